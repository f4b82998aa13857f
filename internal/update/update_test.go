package update

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// fakeHealth is a Confirmer and Restorer whose verdicts a test sets: the real
// one needs systemd and is tested against a real manager in cmd/modelslot.
type fakeHealth struct {
	confirm, restore error
	confirmed        []string
}

func (f *fakeHealth) Confirm(_ context.Context, _, version string) error {
	f.confirmed = append(f.confirmed, version)
	return f.confirm
}
func (f *fakeHealth) Restore(context.Context, string, string) error { return f.restore }

func newUpdater(t *testing.T, h *fakeHealth) *Updater {
	t.Helper()
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u := &Updater{Store: s, Workers: 2}
	if h != nil {
		u.Confirm = h
	}
	return u
}

func install(t *testing.T, u *Updater, version, content string) error {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.bin"), []byte(content), 0o644)
	m, err := verify.Scan(context.Background(), dir, "demo", version, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = u.Install(context.Background(), m, DirSource{Dir: dir})
	return err
}

func TestFailedRestoreIsNotASuccessfulRollback(t *testing.T) {
	h := &fakeHealth{}
	u := newUpdater(t, h)
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	h.confirm = errors.New("crash_loop: v2 exits at once")
	h.restore = errors.New("crash_loop: v1 does not start either")
	err := install(t, u, "v2", "two")
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrRestoreFailed) {
		t.Fatalf("install = %v, want a rollback whose restore failed", err)
	}
	st := u.Store.State()
	if st.LastFailure == nil || !strings.Contains(st.LastFailure.RestoreFailed, "v1 does not start either") {
		t.Fatalf("last failure %+v must say the old version failed too", st.LastFailure)
	}
}

func TestRollbackOfTrialKeepsTheGivenReasonAndFailsWhenRestoreFails(t *testing.T) {
	h := &fakeHealth{}
	u := newUpdater(t, h)
	install(t, u, "v1", "one")
	// Leave v2 on trial, as a crash during its confirmation would.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.bin"), []byte("two"), 0o644)
	m2, _ := verify.Scan(context.Background(), dir, "demo", "v2", 1)
	fill, err := u.Store.BeginInstall(context.Background(), m2)
	if err != nil {
		t.Fatal(err)
	}
	DirSource{Dir: dir}.Fill(context.Background(), fill)
	fill.Commit(context.Background())
	u.Store.Activate(u.Store.Inactive())

	h.restore = errors.New("crash_loop: v1 does not start")
	changed, err := u.RollbackFor(context.Background(), true, "watchdog_timeout: systemd gave up")
	if !changed || !errors.Is(err, ErrRestoreFailed) {
		t.Fatalf("RollbackFor = %v, %v: a rollback that leaves nothing healthy must fail", changed, err)
	}
	st := u.Store.State()
	if st.Trial != nil || st.Slots[st.Previous].Reason != "watchdog_timeout: systemd gave up" {
		t.Fatalf("state after rollback: %+v %+v", st.Trial, st.Slots[st.Previous])
	}
}

func TestResumeRevertsPastMaxAttempts(t *testing.T) {
	h := &fakeHealth{}
	u := newUpdater(t, h)
	install(t, u, "v1", "one")
	h.confirm = errors.New("latency_limit: slow") // never reached: attempts run out first
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.bin"), []byte("two"), 0o644)
	m2, _ := verify.Scan(context.Background(), dir, "demo", "v2", 1)
	fill, _ := u.Store.BeginInstall(context.Background(), m2)
	DirSource{Dir: dir}.Fill(context.Background(), fill)
	fill.Commit(context.Background())
	u.Store.Activate(u.Store.Inactive()) // attempt 1, interrupted
	u.Store.ResumeTrial()                // attempt 2, interrupted
	_, err := u.Resume(context.Background(), 2)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "crash_loop") {
		t.Fatalf("Resume = %v, want a crash_loop revert", err)
	}
	if len(h.confirmed) != 1 { // only v1's own install was confirmed
		t.Fatalf("confirmed %v: past max_attempts the trial must not be confirmed again", h.confirmed)
	}
}
