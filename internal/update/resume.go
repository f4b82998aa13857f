package update

import (
	"context"

	"github.com/modelslot/modelslot/internal/reason"
)

// Resume continues a trial that a crash or restart interrupted: it counts the
// attempt and confirms again; past maxAttempts it reverts instead of looping.
// With no trial it does nothing. It returns whether a trial was found.
func (u *Updater) Resume(ctx context.Context, maxAttempts int) (bool, error) {
	t := u.Store.State().Trial
	if t == nil {
		return false, nil
	}
	n, err := u.Store.ResumeTrial()
	if err != nil {
		return true, err
	}
	if maxAttempts > 0 && n > maxAttempts {
		return true, u.revert(ctx, t, reason.New(reason.CrashLoop, "the trial was interrupted %d times (max_attempts %d)", n-1, maxAttempts))
	}
	return true, u.confirm(ctx)
}
