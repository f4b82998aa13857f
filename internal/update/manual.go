package update

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
)

// ErrNothingToRollBack means there is no good version to go back to.
var ErrNothingToRollBack = errors.New("nothing to roll back to")

// Rollback goes back to the previous good version: a running trial is reverted
// (reason manual), a committed version is left for the previous good one and
// marked bad. With ifTrial it only reverts a trial and otherwise does nothing
// (for OnFailure= units). A repeated rollback is a no-op, not a swing back.
// It returns whether anything changed.
func (u *Updater) Rollback(ctx context.Context, ifTrial bool) (bool, error) {
	return u.RollbackFor(ctx, ifTrial, reason.New(reason.Manual, "rollback requested"))
}

// RollbackFor is Rollback with the reason a running trial is reverted for,
// when it is not a person's wish: the OnFailure= unit passes what systemd saw
// ("crash_loop: …", "watchdog_timeout: …").
func (u *Updater) RollbackFor(ctx context.Context, ifTrial bool, trialReason *reason.Error) (bool, error) {
	st := u.Store.State()
	if st.Trial != nil {
		err := u.revert(ctx, st.Trial, trialReason)
		return true, ignoreRolledBack(err)
	}
	if ifTrial {
		return false, nil
	}
	if st.Restore != nil {
		// The last revert or rollback has not reached the server yet: finish
		// that one instead of going further back.
		return u.FinishRestore(ctx)
	}
	if st.Previous == "" || st.Slots[st.Previous].Status != slots.Good {
		return false, nothingToRollBack(st)
	}
	from := st.Slots[st.Active].Version
	why := reason.New(reason.Manual, "rolled back from this version")
	u.report(ctx, report.StatusRollingBack, st.Slots[st.Previous].Version, saved(reason.Manual, string(reason.Manual)))
	if err := u.Store.Rollback(why); err != nil {
		u.report(ctx, report.StatusFailed, st.Slots[st.Previous].Version, failure(reason.New(reason.Manual, "rollback from %s failed: %w", from, err)))
		return false, err
	}
	_, err := u.FinishRestore(ctx)
	return true, err
}

// MarkGood commits a running trial; without one it does nothing.
func (u *Updater) MarkGood(ctx context.Context) (bool, error) {
	t := u.Store.State().Trial
	if t == nil {
		return false, nil
	}
	if err := u.Store.CommitTrial(); err != nil {
		return false, err
	}
	u.report(ctx, report.StatusSuccess, t.Version)
	return true, nil
}

// MarkBad ends a running trial as failed, or, with no trial, rolls the active
// version back; either way the version is marked bad (reason manual).
func (u *Updater) MarkBad(ctx context.Context) (bool, error) {
	return u.Rollback(ctx, false)
}

// nothingToRollBack explains why there is no rollback target; when the previous
// slot was itself left by a manual rollback, the request is already fulfilled.
func nothingToRollBack(st *slots.State) error {
	if st.Previous == "" {
		return fmt.Errorf("%w: only one version was ever activated", ErrNothingToRollBack)
	}
	prev := st.Slots[st.Previous]
	if prev.Status == slots.Bad && prev.Code == reason.Manual {
		return nil
	}
	return fmt.Errorf("%w: the previous version %s (slot %s) is %s: %s", ErrNothingToRollBack, prev.Version, st.Previous, prev.Status, prev.Reason)
}

// ignoreRolledBack turns the revert's ErrRolledBack into success: the operator
// asked for exactly that. A revert whose previous version did not come back
// stays an error: nothing healthy serves.
func ignoreRolledBack(err error) error {
	if errors.Is(err, ErrRolledBack) && !errors.Is(err, ErrRestoreFailed) {
		return nil
	}
	return err
}
