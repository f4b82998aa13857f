package systemd

import (
	"fmt"
	"time"
)

// watchState is what a watch remembers between two looks at a unit. The rules
// live here, apart from D-Bus, so a table test can hold them.
type watchState struct {
	since    time.Time // when the watch began
	seen     bool      // a status was observed
	active   bool      // the unit was healthy at least once since
	restarts uint32    // NRestarts at the last look
}

// observe judges one status and returns the failure it shows, or nil.
func (w *watchState) observe(st UnitStatus, now time.Time, lim Limits) *Failure {
	f := w.judge(st, now, lim)
	// Also when NRestarts went down: an explicit start resets it, and restarts
	// count from there on.
	w.restarts, w.seen = st.NRestarts, true
	if f != nil {
		f.Unit, f.Status, f.At = st.Unit, st, now
	}
	return f
}

func (w *watchState) judge(st UnitStatus, now time.Time, lim Limits) *Failure {
	switch {
	case st.LoadState != "" && st.LoadState != "loaded":
		return &Failure{Reason: ReasonCrashLoop, Detail: "unit is " + st.LoadState}
	case st.Result == "watchdog" || restarting(st) || st.ActiveState == "failed":
		return &Failure{Reason: classify(st, ""), Detail: describe(st)}
	case w.seen && st.NRestarts > w.restarts:
		return &Failure{Reason: classify(st, ""), Detail: fmt.Sprintf("restarted by systemd (NRestarts %d → %d)", w.restarts, st.NRestarts)}
	}
	if healthy(st) {
		w.active = true
	} else if w.active {
		return &Failure{Reason: ReasonCrashLoop, Detail: "stopped being active: " + describe(st)}
	} else if now.Sub(w.since) > lim.StartTimeout {
		return &Failure{Reason: ReasonStartTimeout, Detail: fmt.Sprintf("not active within %s: %s", lim.StartTimeout, describe(st))}
	}
	if lim.MaxMemory > 0 && st.MemorySource != "" && st.Memory > lim.MaxMemory {
		return &Failure{Reason: ReasonMemory, Detail: fmt.Sprintf("memory %d bytes (%s) > limit %d", st.Memory, st.MemorySource, lim.MaxMemory)}
	}
	return nil
}

// duringJob judges a unit while a start, restart or reload job runs: only an
// automatic restart or a failure is a verdict; slowness is the deadline's call.
func (w *watchState) duringJob(st UnitStatus) *Failure {
	if restarting(st) || st.ActiveState == "failed" || (w.seen && st.NRestarts > w.restarts) {
		return &Failure{Unit: st.Unit, Reason: classify(st, ""), Status: st, At: time.Now(),
			Detail: "failed while its job ran: " + describe(st)}
	}
	w.restarts, w.seen = st.NRestarts, true
	return nil
}

func describe(st UnitStatus) string {
	return fmt.Sprintf("%s/%s, result %s, %d restarts", st.ActiveState, st.SubState, st.Result, st.NRestarts)
}
