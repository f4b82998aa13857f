package systemd

import (
	"fmt"

	"slices"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// Reason is why a unit is unhealthy: a code of the health contract.
type Reason = reason.Code

// The reasons this package can tell from systemd's side.
const (
	ReasonStartTimeout = reason.StartTimeout // not active (READY=1) in time
	ReasonWatchdog     = reason.Watchdog     // killed for missing WATCHDOG=1
	ReasonCrashLoop    = reason.CrashLoop    // exited, restarted, failed or stopped
	ReasonMemory       = reason.Memory       // over Limits.MaxMemory, or OOM-killed
	// ReasonUnreachable: the manager could not be asked for longer than
	// Limits.Unreachable, or it restarted and lost track of the unit (a new
	// invocation, or the unit stopped while the manager shut down). Not a
	// verdict on the unit's version: nobody could watch it.
	ReasonUnreachable = reason.ManagerUnreachable
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

// AsReason is the failure as the contract's typed error: its code, and the
// unit and what was seen as the detail ("crash_loop: unit demo.service: …").
func (f *Failure) AsReason() *reason.Error {
	return &reason.Error{Code: f.Reason, Detail: "unit " + f.Unit + ": " + f.Detail, Err: f}
}

// ReasonForResult names the reason of a unit that systemd gave up on, from
// its Result (what OnFailure= units see as MONITOR_SERVICE_RESULT).
func ReasonForResult(result string) Reason {
	return classify(UnitStatus{Result: result}, "")
}

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
