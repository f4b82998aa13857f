package slots_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

var ctx = context.Background()

func openStore(t *testing.T, dir, link string) *slots.Store {
	t.Helper()
	s, err := slots.Open(ctx, slots.Config{Dir: dir, Model: "demo", Link: link}, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// manifestFor builds a manifest of files given as path → content.
func manifestFor(t *testing.T, version string, files map[string]string) *verify.Manifest {
	t.Helper()
	m := &verify.Manifest{Schema: 1, Model: "demo", Version: version}
	for p, c := range files {
		sum, _, _ := verify.HashReader(ctx, strings.NewReader(c))
		m.Files = append(m.Files, verify.File{Path: p, Size: int64(len(c)), Mode: 0o644, SHA256: sum})
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func install(t *testing.T, s *slots.Store, version string, files map[string]string) string {
	t.Helper()
	m := manifestFor(t, version, files)
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if err := fill.WriteFile(ctx, f, strings.NewReader(files[f.Path])); err != nil {
			t.Fatal(err)
		}
	}
	if err := fill.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return fill.Slot()
}

func TestInstallActivateCommit(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, "")
	slot := install(t, s, "v1", map[string]string{"w.bin": "one", "sub/c.json": "{}"})
	if st := s.State(); slot != slots.A || st.Slots[slot].Status != slots.Installed || st.Active != "" {
		t.Fatalf("after install: slot %s, state %+v", slot, st)
	}
	if err := s.StartTrial(slot); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Trial == nil || st.Active != slot || st.Slots[slot].Status != slots.OnTrial {
		t.Fatalf("after activate: %+v", st)
	}
	if err := s.CommitTrial(); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.Trial != nil || st.Slots[slot].Status != slots.Good {
		t.Fatalf("after commit: %+v", st)
	}
	target, _ := os.Readlink(filepath.Join(dir, "current"))
	if target != "slots/a" {
		t.Fatalf("a link inside the state dir must be relative, got %q", target)
	}
	fi, err := os.Stat(filepath.Join(dir, "current", "sub", "c.json"))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("slot files must be read-only: %v %v", fi.Mode(), err)
	}
	if _, err := s.VerifySlot(ctx, slot, 2); err != nil {
		t.Fatalf("VerifySlot: %v", err)
	}
}

func TestLinkOutsideStateDirIsAbsolute(t *testing.T) {
	dir, srv := t.TempDir(), t.TempDir()
	link := filepath.Join(srv, "demo")
	s := openStore(t, dir, link)
	slot := install(t, s, "v1", map[string]string{"w": "x"})
	if err := s.StartTrial(slot); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(link); target != filepath.Join(dir, "slots", "a") {
		t.Fatalf("link target %q", target)
	}
}

func TestWriteFileRejectsWrongBytes(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	m := manifestFor(t, "v1", map[string]string{"w": "expected"})
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"different": "unexpect", "short": "exp", "long": "expected and more"} {
		err := fill.WriteFile(ctx, m.Files[0], strings.NewReader(src))
		if !errors.Is(err, verify.ErrRejected) {
			t.Errorf("%s: WriteFile = %v, want ErrRejected", name, err)
		}
		if _, serr := os.Stat(filepath.Join(fill.Dir(), "w")); serr == nil {
			t.Errorf("%s: a rejected file was left in the fill", name)
		}
	}
	if err := fill.WriteFile(ctx, m.Files[0], endless{}); !errors.Is(err, verify.ErrRejected) {
		t.Fatalf("an endless source must stop at the declared size: %v", err)
	}
	if err := fill.Commit(ctx); err == nil || !strings.Contains(err.Error(), "never written") {
		t.Fatalf("Commit with a missing file = %v", err)
	}
	if st := s.State(); st.Slots[slots.A].Status != slots.Empty {
		t.Fatalf("after a failed commit the slot must be empty: %+v", st.Slots[slots.A])
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'e'
	}
	return len(p), nil
}

func TestRevertOfFirstInstallRemovesLink(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, "")
	slot := install(t, s, "v1", map[string]string{"w": "x"})
	s.StartTrial(slot)
	if err := s.Revert(reason.New(reason.ProbeMismatch, "wrong")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "current")); !os.IsNotExist(err) {
		t.Fatalf("link still there after reverting a first install: %v", err)
	}
	st := s.State()
	if st.Active != "" || st.Slots[slot].Status != slots.Bad || st.LastFailure == nil || st.LastFailure.Reason != "probe_mismatch: wrong" || st.LastFailure.Code != reason.ProbeMismatch || st.Slots[slot].Code != reason.ProbeMismatch {
		t.Fatalf("state after revert: %+v", st)
	}
}

func TestInstallRefusedDuringTrial(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	s.StartTrial(install(t, s, "v1", map[string]string{"w": "x"}))
	_, err := s.BeginInstall(ctx, manifestFor(t, "v2", map[string]string{"w": "y"}))
	if !errors.Is(err, slots.ErrTrialActive) || !strings.Contains(err.Error(), "mark-good or mark-bad") {
		t.Fatalf("BeginInstall during a trial = %v", err)
	}
}

func TestSecondOpenIsBusyAndNamesHolder(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir, "")
	_, err := slots.Open(ctx, slots.Config{Dir: dir, Model: "demo"}, "second")
	var be *slots.BusyError
	if !errors.As(err, &be) || be.Holder == nil || be.Holder.PID != os.Getpid() || be.Holder.Op != "test" {
		t.Fatalf("second Open = %v, want a BusyError naming this process", err)
	}
}

func TestForeignLinkIsNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, "")
	s.StartTrial(install(t, s, "v1", map[string]string{"w": "x"}))
	s.CommitTrial()
	s.Close()
	os.Remove(filepath.Join(dir, "current"))
	os.Symlink("/opt/somebody-else", filepath.Join(dir, "current"))
	_, err := slots.Open(ctx, slots.Config{Dir: dir, Model: "demo"}, "test")
	if !errors.Is(err, slots.ErrForeignLink) || !strings.Contains(err.Error(), "/opt/somebody-else") {
		t.Fatalf("Open with a foreign link = %v", err)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "current")); target != "/opt/somebody-else" {
		t.Fatal("the foreign link was changed")
	}
}

func TestStateOfOtherModelIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, "")
	install(t, s, "v1", map[string]string{"w": "x"})
	s.Close()
	_, err := slots.Open(ctx, slots.Config{Dir: dir, Model: "other"}, "test")
	if !errors.Is(err, slots.ErrCorruptState) || !strings.Contains(err.Error(), `belongs to model "demo"`) {
		t.Fatalf("Open of another model's state = %v", err)
	}
}
