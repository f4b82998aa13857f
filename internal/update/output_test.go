package update

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
)

// withLines is a verdict that carries the unit's output, as health.Failure does.
type withLines struct {
	error
	lines []string
}

func (w withLines) LogLines() []string { return w.lines }
func (w withLines) Unwrap() error      { return w.error }

type recorder struct{ events []report.Event }

func (r *recorder) Report(_ context.Context, ev *report.Event) { r.events = append(r.events, *ev) }

// The unit's last output lines that came with a failed verdict go into the
// revert's events, after the reason.
func TestRevertEventsCarryTheUnitsOutput(t *testing.T) {
	h := &fakeHealth{}
	u, _ := newUpdater(t, h)
	rec := &recorder{}
	u.Reporter = rec
	if err := install(t, u, "v1", "one"); err != nil {
		t.Fatal(err)
	}
	why := reason.New(reason.CrashLoop, "unit demo.service: exited")
	h.confirm = withLines{why, []string{"loading v2", "panic: bad weights"}}
	if err := install(t, u, "v2", "two"); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("install v2 = %v, want a rollback", err)
	}
	want := []string{"crash_loop: unit demo.service: exited", "loading v2", "panic: bad weights"}
	seen := 0
	for _, ev := range rec.events {
		if ev.Status == report.StatusRollingBack || ev.Status == report.StatusRolledBack {
			seen++
			if !slices.Equal(ev.Logs, want) || ev.FailureReason != string(reason.CrashLoop) {
				t.Fatalf("%s event logs = %q, want %q", ev.Status, ev.Logs, want)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("saw %d revert events, want rolling_back and rolled_back", seen)
	}
}
