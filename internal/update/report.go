package update

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// Reporter receives the steps of updates as events (DESIGN.md § Events); the
// update package fills in what happened (status, versions, failure reason), the
// reporter who and when. It must not fail the update: a reporter that cannot
// record a step logs it and returns.
type Reporter interface {
	Report(ctx context.Context, ev *report.Event)
}

// Reasons of failures that happen before activation (DESIGN.md § Events).
const (
	ReasonVerification = "verification_failed"
	ReasonDownload     = "download_failed"
)

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

// failure sets the reason code, and keeps the whole reason as the first log line.
func failure(reason string) func(*report.Event) {
	return func(ev *report.Event) {
		ev.FailureReason = reasonCode(reason)
		ev.Logs = append(ev.Logs, reason)
	}
}

func rolledBackNow(ev *report.Event) {
	now := time.Now().UTC()
	ev.RollbackTimestamp = &now
}

// Reasons of the contract that this package decides itself (docs/health.md §
// Reasons).
const (
	// ReasonUnitUnavailable: the unit is not found or masked; nothing was swapped.
	ReasonUnitUnavailable = "unit_unavailable"
	// ReasonBusy: another model on the same unit is in trial; nothing was swapped.
	ReasonBusy = "busy"
	// ReasonManagerUnreachable: the service manager could not be asked about
	// the unit; the trial ended without a verdict on the version.
	ReasonManagerUnreachable = "manager_unreachable"
)

// preflightReason names why activation was refused before the link moved.
func preflightReason(err error) string {
	if errors.Is(err, slots.ErrBusy) {
		return ReasonBusy
	}
	return ReasonUnitUnavailable
}

// installFailureReason names why an install failed before activation.
func installFailureReason(err error) string {
	if errors.Is(err, verify.ErrRejected) {
		return ReasonVerification + ": " + err.Error()
	}
	if code := reasonCode(err.Error()); strings.HasSuffix(code, "_failed") {
		return err.Error()
	}
	return ReasonDownload + ": " + err.Error()
}
