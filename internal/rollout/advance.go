package rollout

import (
	"fmt"
	"time"
)

// Tally counts the devices in the stages opened so far (the cohort) and how
// their installs of the target ended. A device stuck in progress past the
// controller's timeout is counted in Failed by the controller.
type Tally struct {
	Cohort    int // devices the opened stages cover
	Succeeded int
	Failed    int
}

// Verdict is what the controller does next with a running rollout.
type Verdict string

// Verdicts of Evaluate.
const (
	VerdictWait     Verdict = "wait"     // soak or success threshold not reached yet
	VerdictAdvance  Verdict = "advance"  // open the next stage
	VerdictComplete Verdict = "complete" // the last stage passed
	VerdictHalt     Verdict = "halt"     // the failure threshold is crossed
)

// Evaluate applies the current stage's thresholds to t. opened is when the
// stage opened. Failures are checked first and at any time: a rollout halts
// the moment its threshold is crossed, soak or not. It returns the verdict and
// the reason in words.
func (r *Rollout) Evaluate(t Tally, opened, now time.Time) (Verdict, string) {
	s := r.Stages[r.Stage]
	if s.MaxFailures > 0 && t.Failed >= s.MaxFailures {
		return VerdictHalt, fmt.Sprintf("%d devices failed in stage %d (threshold %d)", t.Failed, r.Stage, s.MaxFailures)
	}
	if s.MaxFailureShare > 0 && t.Cohort > 0 && uint64(t.Failed)*FullShare >= uint64(s.MaxFailureShare)*uint64(t.Cohort) {
		return VerdictHalt, fmt.Sprintf("%d of %d devices failed in stage %d (threshold %d bp)", t.Failed, t.Cohort, r.Stage, s.MaxFailureShare)
	}
	if soak := time.Duration(s.MinSoak); now.Before(opened.Add(soak)) {
		return VerdictWait, fmt.Sprintf("stage %d soaks until %s", r.Stage, opened.Add(soak).UTC().Format(time.RFC3339Nano))
	}
	// A stage that covers no device (5 % of a small fleet) passes once soaked:
	// there is nothing to wait for, and the next stage still has thresholds.
	if uint64(t.Succeeded)*FullShare < uint64(s.Success)*uint64(t.Cohort) {
		return VerdictWait, fmt.Sprintf("%d of %d devices succeeded in stage %d (threshold %d bp)", t.Succeeded, t.Cohort, r.Stage, s.Success)
	}
	if r.Stage == len(r.Stages)-1 {
		return VerdictComplete, fmt.Sprintf("the last stage passed: %d of %d devices succeeded", t.Succeeded, t.Cohort)
	}
	return VerdictAdvance, fmt.Sprintf("stage %d passed: %d of %d devices succeeded after its soak", r.Stage, t.Succeeded, t.Cohort)
}
