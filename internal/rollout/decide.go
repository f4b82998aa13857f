package rollout

import "fmt"

// Action is what a device does about a rollout.
type Action string

// Actions of a device.
const (
	ActInstall  Action = "install"  // install the target through the normal, verified install path
	ActRollback Action = "rollback" // aborted, and this device took the target: go back
	ActWait     Action = "wait"     // not in an opened stage yet, or paused
	ActHold     Action = "hold"     // halted: start nothing
	ActNone     Action = "none"     // nothing to do: on the target already, finished, or aborted
)

// Device is what a device knows of itself for a decision.
type Device struct {
	ID            string
	ActiveVersion string
	// Took: the device queued the target's install under this rollout.
	Took bool
	// Finished: that install ended (success, failure or rollback). Terminal
	// outcomes are final: a finished device never installs this rollout again.
	Finished bool
}

// Decision is a device's verdict on a rollout, with the reason in words.
type Decision struct {
	Action Action
	Stage  int // the device's stage, -1 when outside every stage
	Why    string
}

// Decide tells a device what to do about r. It is the only place the device's
// rules live: a halted or paused rollout starts nothing, an aborted one rolls
// back (by policy) only the devices that took it, and a device outside the
// opened stages waits.
func (r *Rollout) Decide(d Device) Decision {
	stage := r.StageOf(d.ID)
	on := d.ActiveVersion == r.Target.Version
	dec := func(a Action, format string, args ...any) Decision {
		return Decision{Action: a, Stage: stage, Why: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.State == StateAborted && r.AbortRollback && d.Took && on:
		return dec(ActRollback, "rollout %s was aborted and this device took %s", r.ID, r.Target.Version)
	case r.State == StateAborted:
		return dec(ActNone, "rollout %s was aborted", r.ID)
	case d.Finished:
		return dec(ActNone, "this device's install of %s under rollout %s has ended", r.Target.Version, r.ID)
	case on:
		return dec(ActNone, "%s is already active", r.Target.Version)
	case stage < 0:
		return dec(ActWait, "outside every stage of rollout %s", r.ID)
	case stage > r.Stage:
		return dec(ActWait, "in stage %d; rollout %s has opened stages up to %d", stage, r.ID, r.Stage)
	case r.State == StatePaused:
		return dec(ActWait, "rollout %s is paused: %s", r.ID, r.Reason)
	case r.State == StateHalted:
		return dec(ActHold, "rollout %s is halted: %s", r.ID, r.Reason)
	}
	return dec(ActInstall, "in stage %d of rollout %s, which is %s", stage, r.ID, r.State)
}
