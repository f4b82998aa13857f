package update

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// fakeHealth is a Confirmer and Restorer whose verdicts a test sets: the real
// one needs systemd and is tested against a real manager in cmd/modelslot.
type fakeHealth struct {
	confirm, restore error
	confirmed        []string
	restored         []string
}

func (f *fakeHealth) Confirm(_ context.Context, _, version string) error {
	f.confirmed = append(f.confirmed, version)
	return f.confirm
}

func (f *fakeHealth) Restore(_ context.Context, _, version string) error {
	f.restored = append(f.restored, version)
	return f.restore
}

// events records what the updater reports.
type events []*report.Event

func (e *events) Report(_ context.Context, ev *report.Event) { *e = append(*e, ev) }

func (e events) last() *report.Event { return e[len(e)-1] }

func newUpdater(t *testing.T, h *fakeHealth) (*Updater, *events) {
	t.Helper()
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	evs := &events{}
	u := &Updater{Store: s, Workers: 2, Reporter: evs}
	if h != nil {
		u.Confirm = h
	}
	return u, evs
}

// manifest scans a one-file model directory with content.
func manifest(t *testing.T, version, content string) (*verify.Manifest, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := verify.Scan(context.Background(), dir, "demo", version, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func install(t *testing.T, u *Updater, version, content string) error {
	t.Helper()
	m, dir := manifest(t, version, content)
	_, err := u.Install(context.Background(), m, DirSource{Dir: dir})
	return err
}

// trial leaves version on trial, as a crash during its confirmation would.
func trial(t *testing.T, u *Updater, version, content string) {
	t.Helper()
	m, dir := manifest(t, version, content)
	fill, err := u.Store.BeginInstall(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := (DirSource{Dir: dir}).Fill(context.Background(), fill); err != nil {
		t.Fatal(err)
	}
	if err := fill.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Store.StartTrial(u.Store.Inactive()); err != nil {
		t.Fatal(err)
	}
}

func TestFailedRestoreIsNotASuccessfulRollback(t *testing.T) {
	h := &fakeHealth{}
	u, evs := newUpdater(t, h)
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	h.confirm = reason.New(reason.CrashLoop, "v2 exits at once")
	h.restore = reason.New(reason.CrashLoop, "v1 does not start either")
	err := install(t, u, "v2", "two")
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrRestoreFailed) {
		t.Fatalf("install = %v, want a rollback whose restore failed", err)
	}
	st := u.Store.State()
	if st.LastFailure == nil || st.LastFailure.Code != reason.CrashLoop || st.Restore == nil || st.Restore.Attempts != 1 {
		t.Fatalf("state %+v %+v: the failure and a pending restore must be kept", st.LastFailure, st.Restore)
	}
	if ev := evs.last(); ev.Status != report.StatusFailed || ev.FailureReason != string(reason.CrashLoop) {
		t.Fatalf("last event %+v, want failed crash_loop", ev)
	}
	// The restore is tried again, and once it works, rolled_back is reported.
	h.restore = nil
	if pending, err := u.FinishRestore(context.Background()); !pending || err != nil {
		t.Fatalf("FinishRestore = %v, %v", pending, err)
	}
	if st := u.Store.State(); st.Restore != nil || st.LastFailure.RestoreFailed != "" {
		t.Fatalf("after the restore worked: %+v %+v", st.Restore, st.LastFailure)
	}
	if ev := evs.last(); ev.Status != report.StatusRolledBack || ev.TargetVersion != "v2" || ev.FailureReason != string(reason.CrashLoop) {
		t.Fatalf("last event %+v, want rolled_back of v2 with crash_loop", ev)
	}
}

func TestRollbackOfTrialKeepsTheGivenReasonAndFailsWhenRestoreFails(t *testing.T) {
	h := &fakeHealth{}
	u, _ := newUpdater(t, h)
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	trial(t, u, "v2", "two")
	h.restore = reason.New(reason.CrashLoop, "v1 does not start")
	changed, err := u.RollbackFor(context.Background(), true, reason.New(reason.Watchdog, "systemd gave up"))
	if !changed || !errors.Is(err, ErrRestoreFailed) {
		t.Fatalf("RollbackFor = %v, %v: a rollback that leaves nothing healthy must fail", changed, err)
	}
	st := u.Store.State()
	if st.Trial != nil || st.Slots[st.Previous].Reason != "watchdog_timeout: systemd gave up" || st.Slots[st.Previous].Code != reason.Watchdog {
		t.Fatalf("state after rollback: %+v %+v", st.Trial, st.Slots[st.Previous])
	}
}

// A committed version rolled back by hand is left bad (manual) and the
// previous one restored; a second rollback changes nothing.
func TestRollbackOfACommittedVersionRestoresAndIsIdempotent(t *testing.T) {
	h := &fakeHealth{}
	u, evs := newUpdater(t, h)
	for _, v := range []string{"v1", "v2"} {
		if err := install(t, u, v, v); err != nil {
			t.Fatal(err)
		}
	}
	if changed, err := u.Rollback(context.Background(), false); !changed || err != nil {
		t.Fatalf("Rollback = %v, %v", changed, err)
	}
	st := u.Store.State()
	if st.Slots[st.Active].Version != "v1" || st.Slots[st.Previous].Code != reason.Manual || st.Restore != nil {
		t.Fatalf("after the rollback: %+v", st)
	}
	if len(h.restored) != 1 || h.restored[0] != "v1" {
		t.Fatalf("restored %v, want v1 brought back through the unit", h.restored)
	}
	if ev := evs.last(); ev.Status != report.StatusRolledBack || ev.TargetVersion != "v1" {
		t.Fatalf("last event %+v", ev)
	}
	if changed, err := u.Rollback(context.Background(), false); changed || err != nil {
		t.Fatalf("a repeated rollback = %v, %v; want nothing to do", changed, err)
	}
}

// A trial that could not be judged (the manager went away) reverts without
// blaming the version: its slot stays installed.
func TestUnjudgedTrialRevertsWithoutBlame(t *testing.T) {
	h := &fakeHealth{}
	u, evs := newUpdater(t, h)
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	h.confirm = reason.New(reason.ManagerUnreachable, "the manager went away")
	if err := install(t, u, "v2", "two"); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("install = %v, want rolled back", err)
	}
	st := u.Store.State()
	if s := st.Slots[st.Previous]; s.Version != "v2" || s.Status != slots.Installed || s.Code != "" {
		t.Fatalf("slot of v2 %+v, want installed and not blamed", s)
	}
	if st.LastFailure.Code != reason.ManagerUnreachable || evs.last().FailureReason != string(reason.ManagerUnreachable) {
		t.Fatalf("last failure %+v / event %+v, want manager_unreachable", st.LastFailure, evs.last())
	}
}

// An error without a code from a confirmer is health_check_failed, its text
// kept; a code deep in a wrapped error is found.
func TestVerdictTakesTheCodeAnErrorCarries(t *testing.T) {
	if v := verdict(errors.New("something odd")); v.Code != reason.HealthCheck || v.Error() != "health_check_failed: something odd" {
		t.Fatalf("verdict of a plain error: %q %q", v.Code, v.Error())
	}
	inner := reason.New(reason.Memory, "over the limit")
	if v := verdict(&wrapped{inner}); v.Code != reason.Memory || !errors.Is(v, inner) {
		t.Fatalf("verdict of a wrapped reason: %q %v", v.Code, v)
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestResumeRevertsPastMaxAttempts(t *testing.T) {
	h := &fakeHealth{}
	u, _ := newUpdater(t, h)
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	h.confirm = reason.New(reason.Latency, "slow")   // never reached: attempts run out first
	trial(t, u, "v2", "two")                         // attempt 1, interrupted
	if _, err := u.Store.ResumeTrial(); err != nil { // attempt 2, interrupted
		t.Fatal(err)
	}
	_, err := u.Resume(context.Background(), 2)
	if c, _ := reason.Of(err); !errors.Is(err, ErrRolledBack) || c != reason.CrashLoop {
		t.Fatalf("Resume = %v, want a crash_loop revert", err)
	}
	if len(h.confirmed) != 1 { // only v1's own install was confirmed
		t.Fatalf("confirmed %v: past max_attempts the trial must not be confirmed again", h.confirmed)
	}
}
