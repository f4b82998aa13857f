package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// confirmPoint is passed once the trial is running and before it is judged: a
// crash here must resume the trial on the next start.
var confirmPoint = crashpoint.Declare("trial.before-confirm")

// ErrRolledBack means the new version failed its trial and the previous one is
// serving again. The command line maps it to exit code 4.
var ErrRolledBack = errors.New("update failed and was rolled back")

// ErrRestoreFailed means that after a revert the previous version did not come
// back healthy either: the device needs a person. It always comes with
// ErrRolledBack.
var ErrRestoreFailed = errors.New("the previous version failed too")

// Source writes the files of a manifest into a Fill.
type Source interface {
	Fill(ctx context.Context, fill *slots.Fill) error
	// FirstStep is the step an install from it reports first:
	// report.StatusDownloading for a repository or a bundle (it fetches before
	// it writes), report.StatusInstalling for a local copy.
	FirstStep() string
}

// Committer is a Source told when the slot it filled was committed, to clean up
// what it kept for a resume (staging).
type Committer interface {
	Committed()
}

// Confirmer decides whether an activated version may be kept. It returns nil to
// commit, or an error whose text starts with a failure reason from DESIGN.md §
// Events ("watchdog_timeout: …"). A nil Confirmer commits at once: with no unit
// and no health settings, a swapped link is all there is to confirm.
type Confirmer interface {
	Confirm(ctx context.Context, slot, version string) error
}

// Restorer is a Confirmer that can also bring the previous version back after a
// revert (restart the unit, check it answers). If that fails too, modelslot
// says so and stops: it does not swing back and forth between two bad versions.
type Restorer interface {
	Restore(ctx context.Context, slot, version string) error
}

// Outcome says what an Install did.
type Outcome string

const (
	AlreadyActive Outcome = "already-active" // nothing changed
	Reactivated   Outcome = "reactivated"    // the inactive slot held it already; no copy
	Installed     Outcome = "installed"      // copied, verified, activated, committed
)

// Result of an Install.
type Result struct {
	Outcome Outcome
	Slot    string
	Version string
}

// Updater runs updates on one store.
type Updater struct {
	Store    *slots.Store
	Confirm  Confirmer // nil: commit right after the swap
	Workers  int       // files hashed at once when re-verifying a slot
	Reporter Reporter  // nil: steps are only logged
	// Preflight, if set, runs before the link moves to a new version: it checks
	// that the unit can be activated (reason.UnitUnavailable) and that no other
	// model on the same unit is in trial (slots.ErrBusy). An error stops the
	// install with the new version installed and nothing swapped.
	Preflight func(ctx context.Context) error
}

// Install makes m the active, committed version. Installing the version that is
// already active (same files) changes nothing; one that sits verified in the
// inactive slot is activated without copying.
func (u *Updater) Install(ctx context.Context, m *verify.Manifest, src Source) (Result, error) {
	s := u.Store
	if err := s.CheckLinkDir(); err != nil {
		return Result{}, fmt.Errorf("install %s: %w", m.Version, err)
	}
	if active, err := u.sameAsActive(m); active || err != nil {
		return Result{Outcome: AlreadyActive, Slot: s.State().Active, Version: m.Version}, err
	}
	outcome, err := u.fill(ctx, m, src)
	if err != nil {
		if ctx.Err() == nil {
			u.report(ctx, report.StatusFailed, m.Version, failure(installFailure(err)))
		}
		return Result{}, err
	}
	slot := s.Inactive()
	if u.Preflight != nil {
		if err := u.Preflight(ctx); err != nil {
			if !errors.Is(err, slots.ErrBusy) { // busy is retried, not a failure
				u.report(ctx, report.StatusFailed, m.Version, failure(reason.Wrap(reason.UnitUnavailable, err).(*reason.Error)))
			}
			return Result{}, fmt.Errorf("install %s: not activated, the link was not moved (the version stays installed in slot %s): %w", m.Version, slot, err)
		}
	}
	u.report(ctx, report.StatusActivating, m.Version)
	if err := s.StartTrial(slot); err != nil {
		u.report(ctx, report.StatusFailed, m.Version, failure(&reason.Error{Code: reason.Activation, Detail: err.Error(), Err: err}))
		return Result{}, fmt.Errorf("install %s: %w", m.Version, err)
	}
	slog.Info("activated", "model", m.Model, "version", m.Version, "slot", slot)
	if err := u.confirm(ctx); err != nil {
		return Result{Slot: slot, Version: m.Version}, err
	}
	return Result{Outcome: outcome, Slot: slot, Version: m.Version}, nil
}

// sameAsActive reports whether m is the active version. The same version label
// with other files is refused: a label must name one content, or rollbacks and
// reports would lie.
func (u *Updater) sameAsActive(m *verify.Manifest) (bool, error) {
	st := u.Store.State()
	if st.Active == "" || st.Slots[st.Active].Version != m.Version {
		return false, nil
	}
	cur, err := u.Store.SlotManifest(st.Active)
	if err != nil {
		return false, fmt.Errorf("install %s: read the active slot: %w", m.Version, err)
	}
	if !verify.SameContent(cur, m) {
		return false, fmt.Errorf("install %s: %w: version %s is already active with different files; publish the change under a new version",
			m.Version, verify.ErrRejected, m.Version)
	}
	return st.Trial == nil, nil
}

// fill puts m into the inactive slot, unless it is there already and verifies.
func (u *Updater) fill(ctx context.Context, m *verify.Manifest, src Source) (Outcome, error) {
	s := u.Store
	inactive := s.Inactive()
	if ss := s.State().Slots[inactive]; ss.Version == m.Version && ss.Status != slots.Empty {
		have, err := s.VerifySlot(ctx, inactive, u.Workers)
		if err == nil && verify.SameContent(have, m) {
			slog.Info("inactive slot already holds this version; not copying", "slot", inactive, "version", m.Version)
			return Reactivated, nil
		}
		slog.Warn("inactive slot holds this version but does not verify; installing again", "slot", inactive, "err", err)
	}
	first := src.FirstStep()
	u.report(ctx, first, m.Version)
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		return "", err
	}
	if err := src.Fill(ctx, fill); err != nil {
		if aerr := fill.Abort(); aerr != nil {
			slog.Warn("clean-up after a failed install failed; the next run retries it", "err", aerr)
		}
		return "", fmt.Errorf("install %s: %w", m.Version, err)
	}
	if first != report.StatusInstalling {
		u.report(ctx, report.StatusInstalling, m.Version)
	}
	if err := fill.Commit(ctx); err != nil {
		return "", err
	}
	if c, ok := src.(Committer); ok {
		c.Committed()
	}
	slog.Info("installed", "model", m.Model, "version", m.Version, "slot", fill.Slot())
	return Installed, nil
}

// confirm runs the trial of the activated slot: commit on success, revert on
// failure (returning an error that wraps ErrRolledBack).
func (u *Updater) confirm(ctx context.Context) error {
	t := u.Store.State().Trial
	if t == nil {
		return errors.New("internal error: confirm without a trial")
	}
	confirmPoint.Hit()
	u.report(ctx, report.StatusConfirming, t.Version)
	if u.Confirm != nil {
		if err := u.Confirm.Confirm(ctx, t.Slot, t.Version); err != nil {
			if ctx.Err() != nil {
				// Stopped (SIGTERM), not failed: the trial stays and the next
				// start resumes it. Reverting here would blame the model for
				// the operator's stop.
				return fmt.Errorf("trial of %s interrupted; the next modelslot command resumes it: %w", t.Version, ctx.Err())
			}
			return u.revert(ctx, t, verdict(err))
		}
	}
	if err := u.Store.CommitTrial(); err != nil {
		return fmt.Errorf("commit %s: %w", t.Version, err)
	}
	slog.Info("committed", "version", t.Version, "slot", t.Slot)
	u.report(ctx, report.StatusSuccess, t.Version)
	return nil
}

// verdict is a confirmer's error as a reason: the code it carries, or
// health_check_failed for one that carries none.
func verdict(err error) *reason.Error {
	var why *reason.Error
	if errors.As(err, &why) && why == err {
		return why
	}
	return &reason.Error{Code: reason.CodeOf(err, reason.HealthCheck), Detail: strings.TrimPrefix(err.Error(), string(reason.CodeOf(err, ""))+": "), Err: err}
}

// revert ends trial t as failed for why, moves the link back and restores the
// previous version. A reason that blames no one (reason.ManagerUnreachable)
// leaves the version's slot installed (slots.Store.Revert).
func (u *Updater) revert(ctx context.Context, t *slots.Trial, why *reason.Error) error {
	lines := withLogs(logLines(why)) // the unit's last output, after the reason
	u.report(ctx, report.StatusRollingBack, t.Version, failure(why), lines)
	if err := u.Store.Revert(why); err != nil {
		u.report(ctx, report.StatusFailed, t.Version, saved(why.Code, why.Error()+"; and the revert failed: "+err.Error()))
		return fmt.Errorf("revert %s after %q: %w", t.Version, why, err)
	}
	slog.Warn("reverted", "version", t.Version, "reason", why.Code, "blamed", why.Code.Blames(), "detail", why.Detail)
	if _, err := u.finishRestore(ctx, lines); err != nil {
		return fmt.Errorf("%w: %w", ErrRolledBack, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrRolledBack, t.Version, why)
}

// FinishRestore brings the version that a revert or rollback put the link back
// to into service (state.json's pending restore): the unit is restarted or
// reloaded on it and it must answer its probe. Only then is it reported
// rolled_back. A restore that fails stays pending, is reported failed with what
// went wrong, and is tried again by the next FinishRestore (the agent retries
// with backoff; `modelslot recover` and every state-changing command do too).
// It returns whether a restore was pending. The error wraps ErrRestoreFailed.
func (u *Updater) FinishRestore(ctx context.Context) (bool, error) {
	return u.finishRestore(ctx)
}

// finishRestore is FinishRestore with more for the rolled_back event (the
// failed version's output lines).
func (u *Updater) finishRestore(ctx context.Context, more ...func(*report.Event)) (bool, error) {
	r := u.Store.State().Restore
	if r == nil {
		return false, nil
	}
	target := r.From // a revert reports on the version it reverted
	if r.Op == slots.OpRollback {
		target = r.Version // a rollback, on the version it goes back to
	}
	if rs, ok := u.Confirm.(Restorer); ok {
		if err := rs.Restore(ctx, r.Slot, r.Version); err != nil {
			if ctx.Err() != nil {
				return true, fmt.Errorf("restore of %s interrupted; the next modelslot command or the agent tries again: %w", r.Version, ctx.Err())
			}
			msg := fmt.Sprintf("%s (slot %s) did not come back healthy: %v; modelslot keeps trying (the agent with backoff, or run `modelslot recover`)", r.Version, r.Slot, err)
			if nerr := u.Store.NoteRestoreFailure(msg); nerr != nil {
				slog.Error("could not record the failed restore", "err", nerr)
			}
			u.report(ctx, report.StatusFailed, target, saved(r.Code, r.Reason), func(ev *report.Event) { ev.Logs = append(ev.Logs, msg) },
				withLogs(logLines(err))) // the unit's output as the old version failed too
			return true, fmt.Errorf("%w: %s", ErrRestoreFailed, msg)
		}
	}
	if err := u.Store.Restored(); err != nil {
		return true, fmt.Errorf("record that %s serves again: %w", r.Version, err)
	}
	slog.Info("restored", "version", r.Version, "slot", r.Slot)
	u.report(ctx, report.StatusRolledBack, target, append([]func(*report.Event){saved(r.Code, r.Reason)}, append(more, rolledBackNow)...)...)
	return true, nil
}
