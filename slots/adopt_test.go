package slots_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// indexed makes m a schema-2 manifest (the index itself is not read here).
func indexed(m *verify.Manifest) *verify.Manifest {
	m.Schema = verify.SchemaIndexed
	m.Index = &verify.IndexRef{SHA256: strings.Repeat("a", 64), Size: 56, Chunks: 1}
	return m
}

// staged is a file the caller staged, as Adopt takes it: a directory opened
// as a root and the file's name beneath it.
func staged(t *testing.T, data string) (*durable.Root, string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "staged"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := durable.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, "staged"
}

// An adopted file is not hashed at commit — the chunk digests were the check —
// but its size is, and `verify` still hashes it: other bytes of the right size
// commit (the caller's contract) and are then caught by VerifySlot.
func TestAdoptVerifiedIsNotHashedAtCommitButVerifyHashesIt(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	m := indexed(manifestFor(t, "v1", map[string]string{"w": "right bytes"}))
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	sr, rel := staged(t, "wrong bytes")
	if err := fill.AdoptVerified(m.Files[0], sr, rel); err != nil {
		t.Fatal(err)
	}
	if err := fill.Commit(ctx); err != nil {
		t.Fatalf("commit of an adopted file hashed it: %v", err)
	}
	fi, err := os.Stat(filepath.Join(s.SlotDir(fill.Slot()), "w"))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("adopted file after commit: %v, mode %v; want sealed read-only", err, fi.Mode())
	}
	var mm *verify.MismatchError
	if _, err := s.VerifySlot(ctx, fill.Slot(), 1); !errors.As(err, &mm) {
		t.Fatalf("VerifySlot of other bytes = %v, want a mismatch", err)
	}
}

func TestAdoptVerifiedChecksSizeAndSchema(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	m := indexed(manifestFor(t, "v1", map[string]string{"w": "right bytes"}))
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	sr, rel := staged(t, "short")
	fill.AdoptVerified(m.Files[0], sr, rel)
	var mm *verify.MismatchError
	if err := fill.Commit(ctx); !errors.As(err, &mm) || !strings.Contains(err.Error(), "5 bytes") {
		t.Fatalf("commit of an adopted file of another size = %v, want a size mismatch", err)
	}
	m1 := manifestFor(t, "v2", map[string]string{"w": "right bytes"})
	fill, err = s.BeginInstall(ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Abort()
	sr, rel = staged(t, "right bytes")
	if err := fill.AdoptVerified(m1.Files[0], sr, rel); !errors.Is(err, verify.ErrRejected) {
		t.Fatalf("AdoptVerified under a schema-1 manifest = %v, want a refusal", err)
	}
}

// The slot being refilled keeps its previous version aside for reuse until
// the install ends: removed at Commit, and at Abort.
func TestRefilledSlotKeepsItsPreviousVersionUntilTheInstallEnds(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	a := install(t, s, "v1", map[string]string{"w": "one"})
	s.StartTrial(a)
	s.CommitTrial()
	b := install(t, s, "v2", map[string]string{"w": "two"})
	s.StartTrial(b)
	s.CommitTrial()
	for _, end := range []string{"abort", "commit"} {
		m := manifestFor(t, "v3-"+end, map[string]string{"w": "three"})
		fill, err := s.BeginInstall(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		dir, pm := fill.Previous()
		if fill.Slot() != a || pm == nil || pm.Version != "v1" {
			t.Fatalf("%s: previous of slot %s = %v", end, fill.Slot(), pm)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "w")); err != nil || string(b) != "one" {
			t.Fatalf("%s: the previous version's file: %q, %v", end, b, err)
		}
		if end == "abort" {
			fill.Abort()
		} else {
			fill.WriteFile(ctx, m.Files[0], strings.NewReader("three"))
			if err := fill.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after %s the previous version is still kept: %v", end, err)
		}
		if end == "abort" { // an aborted slot is empty: put v1 back for the commit case
			install(t, s, "v1", map[string]string{"w": "one"})
		}
	}
}
