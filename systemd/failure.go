package systemd

import (
	"fmt"
	"slices"
	"time"
)

// Reason is why a unit is unhealthy, in the words of the health contract
// (DESIGN.md § Events: failure_reason).
type Reason string

// The reasons this package can tell from systemd's side.
const (
	ReasonStartTimeout Reason = "start_timeout"    // not active (READY=1) in time
	ReasonWatchdog     Reason = "watchdog_timeout" // killed for missing WATCHDOG=1
	ReasonCrashLoop    Reason = "crash_loop"       // exited, restarted, failed or stopped
	ReasonMemory       Reason = "memory_limit"     // over Limits.MaxMemory, or OOM-killed
	// ReasonUnreachable: the manager could not be asked for longer than
	// Limits.Unreachable, or it restarted and lost track of the unit (a new
	// invocation, or the unit stopped while the manager shut down). Not a
	// verdict on the unit's version: nobody could watch it.
	ReasonUnreachable Reason = "manager_unreachable"
)

// Failure is the first health failure seen of a unit. It is an error.
type Failure struct {
	Unit   string
	Reason Reason
	Detail string     // what was seen, for a person
	Status UnitStatus // the unit as last read (may be partial)
	At     time.Time
	Err    error // the job or D-Bus error behind it, if any
}

func (f *Failure) Error() string {
	return fmt.Sprintf("unit %s unhealthy: %s: %s", f.Unit, f.Reason, f.Detail)
}

func (f *Failure) Unwrap() error { return f.Err }

// classify names the reason of a unit that stopped being healthy, from what
// systemd says about it. jobResult is the failed job's result, or "".
func classify(st UnitStatus, jobResult string) Reason {
	switch {
	case st.Result == "watchdog" || st.SubState == "stop-watchdog":
		return ReasonWatchdog
	case st.Result == "oom-kill":
		return ReasonMemory
	case st.Result == "timeout" || jobResult == "timeout":
		return ReasonStartTimeout
	default:
		return ReasonCrashLoop
	}
}

// restarting is a unit between an automatic restart's stop and start.
func restarting(st UnitStatus) bool {
	return st.SubState == "auto-restart" || st.SubState == "stop-watchdog"
}

// healthy states a watched unit may be in once it was active.
func healthy(st UnitStatus) bool {
	return slices.Contains([]string{"active", "reloading"}, st.ActiveState) && !restarting(st)
}
