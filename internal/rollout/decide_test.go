package rollout

import (
	"fmt"
	"testing"
	"time"
)

// deviceIn finds a device id whose stage in r is want.
func deviceIn(t *testing.T, r *Rollout, want int) string {
	t.Helper()
	for i := range 10000 {
		if id := fmt.Sprintf("dev-%d", i); r.StageOf(id) == want {
			return id
		}
	}
	t.Fatalf("no device in stage %d", want)
	return ""
}

func TestDecide(t *testing.T) {
	base := validRollout()
	first, last := deviceIn(t, base, 0), deviceIn(t, base, 2)
	tests := []struct {
		name   string
		state  string
		stage  int
		abort  bool
		dev    Device
		action Action
	}{
		{"first stage installs", StateRunning, 0, true, Device{ID: first, ActiveVersion: "v1"}, ActInstall},
		{"a first install (nothing active) installs", StateRunning, 0, true, Device{ID: first}, ActInstall},
		{"later stage waits for its stage", StateRunning, 0, true, Device{ID: last, ActiveVersion: "v1"}, ActWait},
		{"later stage installs once opened", StateRunning, 2, true, Device{ID: last, ActiveVersion: "v1"}, ActInstall},
		{"a completed rollout still converges a late device", StateCompleted, 2, true, Device{ID: last, ActiveVersion: "v1"}, ActInstall},
		{"on the target: nothing", StateRunning, 0, true, Device{ID: first, ActiveVersion: "v2"}, ActNone},
		{"finished is final (failed and rolled back)", StateRunning, 0, true, Device{ID: first, ActiveVersion: "v1", Took: true, Finished: true}, ActNone},
		{"paused starts nothing", StatePaused, 0, true, Device{ID: first, ActiveVersion: "v1"}, ActWait},
		{"halted starts nothing", StateHalted, 2, true, Device{ID: first, ActiveVersion: "v1"}, ActHold},
		{"halted leaves a device that took it alone", StateHalted, 0, true, Device{ID: first, ActiveVersion: "v2", Took: true}, ActNone},
		{"aborted rolls back a device that took it", StateAborted, 0, true, Device{ID: first, ActiveVersion: "v2", Took: true, Finished: true}, ActRollback},
		{"aborted without the policy leaves it", StateAborted, 0, false, Device{ID: first, ActiveVersion: "v2", Took: true}, ActNone},
		{"aborted does not touch a device on the target by other means", StateAborted, 0, true, Device{ID: first, ActiveVersion: "v2"}, ActNone},
		{"aborted does not roll back one that already went back", StateAborted, 0, true, Device{ID: first, ActiveVersion: "v1", Took: true, Finished: true}, ActNone},
		{"aborted never starts an install", StateAborted, 2, true, Device{ID: last, ActiveVersion: "v1"}, ActNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout()
			r.State, r.Stage, r.AbortRollback = tt.state, tt.stage, tt.abort
			d := r.Decide(tt.dev)
			if d.Action != tt.action || d.Why == "" {
				t.Fatalf("Decide = %+v, want %s", d, tt.action)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	opened := t0
	soaked := t0.Add(2 * time.Second)
	tests := []struct {
		name  string
		stage int
		tally Tally
		now   time.Time
		want  Verdict
	}{
		{"one failure halts stage 0 before its soak", 0, Tally{Cohort: 10, Succeeded: 1, Failed: 1}, opened, VerdictHalt},
		{"soaking waits even when all succeeded", 0, Tally{Cohort: 2, Succeeded: 2}, opened.Add(time.Second - 1), VerdictWait},
		{"soaked and all succeeded advances", 0, Tally{Cohort: 2, Succeeded: 2}, soaked, VerdictAdvance},
		{"soaked but short of the threshold waits", 0, Tally{Cohort: 2, Succeeded: 1}, soaked, VerdictWait},
		{"an empty stage advances once soaked", 0, Tally{}, soaked, VerdictAdvance},
		{"failure share at the threshold halts", 1, Tally{Cohort: 10, Succeeded: 5, Failed: 1}, soaked, VerdictHalt},
		{"failure share under the threshold goes on", 1, Tally{Cohort: 11, Succeeded: 10, Failed: 1}, soaked, VerdictAdvance},
		{"90% success meets a 90% threshold", 1, Tally{Cohort: 20, Succeeded: 18, Failed: 1}, soaked, VerdictAdvance},
		{"last stage passing completes", 2, Tally{Cohort: 100, Succeeded: 96, Failed: 2}, soaked, VerdictComplete},
		{"last stage: failure count halts", 2, Tally{Cohort: 1000, Succeeded: 900, Failed: 3}, soaked, VerdictHalt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout()
			r.Stage = tt.stage
			v, why := r.Evaluate(tt.tally, opened, tt.now)
			if v != tt.want || why == "" {
				t.Fatalf("Evaluate = %s (%s), want %s", v, why, tt.want)
			}
		})
	}
}
