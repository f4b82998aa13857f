package slots

import (
	"errors"
	"fmt"
	"time"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/reason"
)

// Errors of the state machine, for callers that must tell them apart.
var (
	ErrNoTrial     = errors.New("no trial in progress")
	ErrTrialActive = errors.New("a trial is in progress")
	ErrNoPrevious  = errors.New("no previous good version to go back to")
)

// Every link switch passes two crash points: after the intent is saved and
// after the link moved. Recovery must finish the switch from either.
var switchPoints = map[string][2]crashpoint.Point{
	OpActivate: {crashpoint.Declare("activate.after-intent"), crashpoint.Declare("activate.after-link")},
	OpRevert:   {crashpoint.Declare("revert.after-intent"), crashpoint.Declare("revert.after-link")},
	OpRollback: {crashpoint.Declare("rollback.after-intent"), crashpoint.Declare("rollback.after-link")},
}

var commitPoint = crashpoint.Declare("commit.before-state")

// StartTrial points the link at slot name and starts its trial (the link swap
// of an activation; the unit is activated by health). The trial is saved
// before the link moves, so a crash at any moment leaves a state that recovery
// finishes. The slot must be complete and verified (Installed, or Good/Bad from
// an earlier life that the caller re-verified).
func (s *Store) StartTrial(name string) error {
	if s.st.Trial != nil {
		return fmt.Errorf("activate slot %s: %w (slot %s, %s)", name, ErrTrialActive, s.st.Trial.Slot, s.st.Trial.Version)
	}
	slot := s.st.Slots[name]
	if name == s.st.Active || (slot.Status != Installed && slot.Status != Good && slot.Status != Bad) {
		return fmt.Errorf("activate slot %s: it is %s and active is %q; nothing to activate", name, slot.Status, s.st.Active)
	}
	from := s.st.Active
	return s.switchLink(Switch{Op: OpActivate, To: name, From: from}, func(st *State) {
		st.Trial = &Trial{Slot: name, Version: slot.Version, From: from, Started: time.Now().UTC(), Attempts: 1}
		st.Restore = nil // the new trial supersedes it; its revert owes a restore of its own
		st.Slots[name].Status, st.Slots[name].Code, st.Slots[name].Reason = OnTrial, "", ""
	})
}

// CommitTrial ends the trial successfully: the slot becomes good, and the previous
// slot stays as the rollback target.
func (s *Store) CommitTrial() error {
	t := s.st.Trial
	if t == nil {
		return ErrNoTrial
	}
	commitPoint.Hit()
	return s.update(func(st *State) {
		st.Slots[t.Slot].Status = Good
		st.Trial = nil
	})
}

// Revert ends the trial as a failure: the slot is marked bad with why, and
// the link goes back to the slot served before (or is removed on a first
// install, where there is nothing to go back to). A reason that blames no one
// (the trial could not be judged: reason.ManagerUnreachable) leaves the slot
// installed, verified and not blamed, so the same version may be tried again.
// The slot gone back to is saved as a pending Restore until the caller
// confirms it serves (Restored).
func (s *Store) Revert(why *reason.Error) error {
	t := s.st.Trial
	if t == nil {
		return ErrNoTrial
	}
	text := why.Error()
	return s.switchLink(Switch{Op: OpRevert, To: t.From, From: t.Slot, Reason: text}, func(st *State) {
		slot := st.Slots[t.Slot]
		slot.Status, slot.Code, slot.Reason = Installed, "", ""
		if why.Code.Blames() {
			slot.Status, slot.Code, slot.Reason = Bad, why.Code, text
		}
		st.LastFailure = &Failure{Slot: t.Slot, Version: t.Version, Code: why.Code, Reason: text, At: time.Now().UTC()}
		st.Restore = pendingRestore(st, OpRevert, t.From, t.Version, why)
	})
}

// pendingRestore is the restore owed after the link goes back to slot, or nil
// when the link is removed.
func pendingRestore(st *State, op, slot, from string, why *reason.Error) *Restore {
	if slot == "" {
		return nil
	}
	return &Restore{Slot: slot, Version: st.Slots[slot].Version, Op: op, From: from, Code: why.Code, Reason: why.Error(), Since: time.Now().UTC()}
}

// Rollback leaves the active, committed version for the previous good one. The
// version left is marked bad with why, so a repeated rollback does not swing
// back and forth.
func (s *Store) Rollback(why *reason.Error) error {
	if s.st.Trial != nil {
		return fmt.Errorf("rollback: %w; revert it instead", ErrTrialActive)
	}
	prev, active := s.st.Previous, s.st.Active
	if prev == "" || s.st.Slots[prev].Status != Good {
		return ErrNoPrevious
	}
	text := why.Error()
	return s.switchLink(Switch{Op: OpRollback, To: prev, From: active, Reason: text}, func(st *State) {
		st.Slots[active].Status, st.Slots[active].Code, st.Slots[active].Reason = Bad, why.Code, text
		st.Restore = pendingRestore(st, OpRollback, prev, st.Slots[active].Version, why)
	})
}

// ResumeTrial counts one more attempt at confirming the trial, after a crash or
// restart interrupted the previous one, and returns the count.
func (s *Store) ResumeTrial() (int, error) {
	if s.st.Trial == nil {
		return 0, ErrNoTrial
	}
	err := s.update(func(st *State) { st.Trial.Attempts++ })
	return s.st.Trial.Attempts, err
}

// switchLink saves the intent, moves the link, and finishes the switch.
func (s *Store) switchLink(sw Switch, prepare func(*State)) error {
	if sw.To != "" {
		if err := s.CheckLinkDir(); err != nil {
			return err
		}
	}
	if err := s.update(func(st *State) { prepare(st); st.Switch = &sw }); err != nil {
		return fmt.Errorf("%s: %w", sw.Op, err)
	}
	switchPoints[sw.Op][0].Hit()
	return s.finishSwitch()
}

// finishSwitch moves the link to the pending switch's target (again, if it was
// already moved: the swap is idempotent) and records the result.
func (s *Store) finishSwitch() error {
	sw := *s.st.Switch
	if err := s.pointLink(sw.To); err != nil {
		return fmt.Errorf("%s: %w", sw.Op, err)
	}
	switchPoints[sw.Op][1].Hit()
	return s.update(func(st *State) {
		st.Active, st.Switch = sw.To, nil
		if sw.From != "" {
			st.Previous = sw.From
		}
		if sw.Op == OpRevert {
			st.Trial = nil
		}
	})
}

// NoteRestoreFailure records that bringing the pending restore's version into
// service failed (once more): on the restore, for the next try, and on the last
// failure, where status shows it.
func (s *Store) NoteRestoreFailure(msg string) error {
	return s.update(func(st *State) {
		if r := st.Restore; r != nil {
			r.Attempts++
			r.LastError = msg
		}
		if st.LastFailure != nil {
			st.LastFailure.RestoreFailed = msg
		}
	})
}

// Restored clears the pending restore: its version serves again. A restore
// failure noted earlier is cleared with it, since it no longer holds.
func (s *Store) Restored() error {
	if s.st.Restore == nil {
		return nil
	}
	return s.update(func(st *State) {
		st.Restore = nil
		if st.LastFailure != nil {
			st.LastFailure.RestoreFailed = ""
		}
	})
}
