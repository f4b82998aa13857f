package update

import (
	"context"
	"errors"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/verify"
)

// Reporter receives the steps of updates as events (DESIGN.md § Events); the
// update package fills in what happened (status, versions, failure reason), the
// reporter who and when. It must not fail the update: a reporter that cannot
// record a step logs it and returns.
type Reporter interface {
	Report(ctx context.Context, ev *report.Event)
}

func (u *Updater) report(ctx context.Context, status, target string, mod ...func(*report.Event)) {
	if u.Reporter == nil {
		return
	}
	st := u.Store.State()
	ev := &report.Event{Status: status, TargetVersion: target}
	if st.Active != "" {
		ev.CurrentVersion = st.Slots[st.Active].Version
	}
	for _, m := range mod {
		m(ev)
	}
	u.Reporter.Report(ctx, ev)
}

// failure sets the event's reason code from why, and keeps its whole text as
// the first log line.
func failure(why *reason.Error) func(*report.Event) {
	return saved(why.Code, why.Error())
}

// saved is failure for a reason as state.json keeps it: its code, and its
// text ("code: detail").
func saved(code reason.Code, text string) func(*report.Event) {
	return func(ev *report.Event) {
		ev.FailureReason = string(code)
		ev.Logs = append(ev.Logs, text)
	}
}

func rolledBackNow(ev *report.Event) {
	now := time.Now().UTC()
	ev.RollbackTimestamp = &now
}

// installFailure names why an install failed before activation: a code the
// error carries (the download path, a unit refused), a rejected artifact, or
// else the download.
func installFailure(err error) *reason.Error {
	var why *reason.Error
	switch {
	case errors.As(err, &why):
		return &reason.Error{Code: why.Code, Detail: err.Error(), Err: err}
	case errors.Is(err, verify.ErrRejected):
		return &reason.Error{Code: reason.Verification, Detail: err.Error(), Err: err}
	}
	return &reason.Error{Code: reason.Download, Detail: err.Error(), Err: err}
}
