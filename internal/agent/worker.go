package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// Installer installs the artifact that source names into an open model (a
// channel or manifest URL, or a bundle path). The agent's own is
// session.InstallSource, exactly what `modelslot install SOURCE` runs; tests
// put a fake in its place.
// progress counts the bytes downloaded, for the metrics.
type Installer func(ctx context.Context, m *session.Session, source string, o session.InstallOptions) error

// errRetry marks a command that failed for a reason that may pass (the model is
// busy, the network is down): it stays queued and is tried again later.
var errRetry = errors.New("will retry")

// errReplaced: a queued install dropped for a newer one for the same model.
var errReplaced = errors.New("replaced by a newer command")

// runCommand carries out one command. It returns an error wrapping errRetry
// when the command should stay queued.
func (a *Agent) runCommand(ctx context.Context, c Command) error {
	m, err := a.Config.Model(c.Model)
	if err != nil {
		return err // not configured here: retrying cannot help
	}
	if c.Action == ActionInstall && c.fromPlatform() {
		// Checked again at run time: the file may have been replaced (by a
		// FIFO, a link) since intake, or queued by an older agent unchecked.
		if err := checkSource(c.Source, a.Config.Agent.BundleDir); err != nil {
			err = fmt.Errorf("%w: command %s: %w", ErrRefused, c.ID, err)
			a.reject(ctx, c, err)
			return err
		}
	}
	if c.Rollout != "" {
		f := a.rollouts[c.Model]
		if f == nil {
			return fmt.Errorf("%w: model %s follows no rollout", errGated, c.Model)
		}
		if err := f.gate(c); err != nil {
			return err
		}
	}
	open := session.Open
	if c.Action != ActionInstall {
		open = session.OpenToEndTrial // rollback, mark-good, mark-bad end a trial themselves
	}
	d, err := open(ctx, a.Config, m, "agent "+c.Action+" "+c.ID)
	if errors.Is(err, slots.ErrBusy) {
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	if err != nil {
		return err
	}
	defer d.Close()
	return a.carryOut(ctx, d, c)
}

// carryOut runs c on the open model. Every event of the update carries the
// command's id (and rollout id). An install refused before the updater ran —
// the manifest's signature, its sequence (downgrade), the device's
// constraints — would otherwise leave the platform no trace, so it is reported
// here as failed (verification_failed).
func (a *Agent) carryOut(ctx context.Context, d *session.Session, c Command) error {
	rep := &taggedReporter{next: d.Updater.Reporter, rollout: c.Rollout, command: c.ID}
	d.Updater.Reporter = rep
	var err error
	switch c.Action {
	case ActionRollback:
		_, err = d.Updater.Rollback(ctx, false)
	case ActionMarkGood:
		_, err = d.Updater.MarkGood(ctx)
	case ActionMarkBad:
		_, err = d.Updater.MarkBad(ctx)
	case ActionInstall:
		err = a.install(ctx, d, c)
	}
	if c.Action == ActionInstall && errors.Is(err, verify.ErrRejected) && !rep.terminal && ctx.Err() == nil {
		ev := &report.Event{Status: report.StatusFailed, FailureReason: string(reason.Verification), Logs: []string{err.Error()}}
		if f := a.rollouts[c.Model]; f != nil && c.Rollout != "" {
			ev.TargetVersion = f.target(c.Rollout)
		}
		if st := d.Store.State(); st.Active != "" {
			ev.CurrentVersion = st.Slots[st.Active].Version
		}
		rep.Report(ctx, ev)
	}
	if c.fromPlatform() && !rep.terminal && !a.answered[c.ID] && ctx.Err() == nil && !errors.Is(err, errRetry) {
		rep.Report(ctx, answer(d, c, err))
	}
	a.outcome[c.ID] = rep.status
	return err
}

// answer is the terminal event of a platform command whose run reported
// none, so every command the platform sent ends in exactly one (the
// channel's and rollouts' own commands are answered by their updates and
// rollout events): nothing to do (no trial to
// mark, nothing to roll back to, the version already there), or failed with
// the error's reason code.
func answer(d *session.Session, c Command, err error) *report.Event {
	ev := &report.Event{Status: report.StatusNothingToDo, Logs: []string{c.Action + ": nothing to change"}}
	if err != nil && !errors.Is(err, update.ErrNothingToRollBack) {
		ev.Status, ev.FailureReason = report.StatusFailed, string(reason.CodeOf(err, ""))
	}
	if err != nil {
		ev.Logs = []string{err.Error()}
	}
	if st := d.Store.State(); st.Active != "" {
		ev.CurrentVersion = st.Slots[st.Active].Version
	}
	return ev
}

// install installs c's source. A command a rollout queued pins the manifest
// (the sha256 of its envelope, as the signed rollout document names it): any
// other is refused, so a mirror cannot serve another signed version under the
// rollout's name.
func (a *Agent) install(ctx context.Context, d *session.Session, c Command) error {
	install := a.Install
	if install == nil {
		install = func(ctx context.Context, d *session.Session, source string, o session.InstallOptions) error {
			_, err := d.InstallSource(ctx, source, o)
			return err
		}
	}
	count := a.metrics.downloadProgress(d.Model.Name)
	progress := func(done, total int64) { // every chunk is a sign of life
		a.live.beat(loopWork)
		count(done, total)
	}
	err := install(ctx, d, c.Source, session.InstallOptions{Progress: progress, ManifestSHA256: c.ManifestSHA256,
		Corrupt: a.metrics.corruptDownload(d.Model.Name)})
	if err == nil || errors.Is(err, verify.ErrRejected) || errors.Is(err, update.ErrRolledBack) || ctx.Err() != nil {
		return err // done, or a verdict that retrying would only repeat
	}
	return fmt.Errorf("%w: %v", errRetry, err)
}

// work runs queued commands in order until ctx ends. A command that should be
// retried blocks the ones behind it (order matters: a rollback must not overtake
// the install it undoes), unless a newer command for the same model replaces it.
func (a *Agent) work(ctx context.Context) {
	backoff := a.minBackoff()
	for ctx.Err() == nil {
		a.live.beat(loopWork)
		changed := a.Inbox.Changed()
		seqs, cmds := a.Inbox.Pending()
		if len(cmds) == 0 {
			sleepCtx(ctx, time.Minute, changed)
			continue
		}
		if err, ok := a.recovered[cmds[0].ID]; ok {
			delete(a.recovered, cmds[0].ID)
			a.finish(seqs[0], cmds[0], err)
			continue
		}
		if newer := replacedBy(cmds); newer > 0 {
			slog.Info("agent: command replaced by a newer one for the same model", "id", cmds[0].ID, "by", cmds[newer].ID)
			a.finish(seqs[0], cmds[0], errReplaced)
			continue
		}
		err := a.runCommand(ctx, cmds[0])
		if errors.Is(err, errRetry) && ctx.Err() == nil {
			slog.Warn("agent: command will be retried", "id", cmds[0].ID, "action", cmds[0].Action, "err", err, "in", backoff)
			sleepCtx(ctx, backoff, nil)
			backoff = min(backoff*2, 5*time.Minute)
			continue
		}
		if ctx.Err() != nil {
			return // stopped mid-command: it stays queued for the next start
		}
		backoff = a.minBackoff()
		a.finish(seqs[0], cmds[0], err)
	}
}

// replacedBy returns the index of a newer install for the same model as the
// first command, if the first one is an install (only an install can be
// superseded: a pending rollback is never skipped).
func replacedBy(cmds []Command) int {
	if cmds[0].Action != ActionInstall {
		return 0
	}
	for i := 1; i < len(cmds); i++ {
		if cmds[i].Model == cmds[0].Model && cmds[i].Action == ActionInstall {
			return i
		}
	}
	return 0
}

func (a *Agent) finish(seq uint64, c Command, err error) {
	if err != nil {
		slog.Warn("agent: command failed", "id", c.ID, "action", c.Action, "model", c.Model, "err", err)
	} else {
		slog.Info("agent: command done", "id", c.ID, "action", c.Action, "model", c.Model)
	}
	if !errors.Is(err, ErrRefused) { // reject counted it
		a.metrics.command(c.Action, a.outcome[c.ID], err)
	}
	delete(a.outcome, c.ID)
	if f := a.rollouts[c.Model]; f != nil && c.Rollout != "" && !errors.Is(err, errGated) && !errors.Is(err, errReplaced) {
		f.done(c, err)
	}
	if derr := a.Inbox.Done(seq); derr != nil {
		slog.Error("agent: could not remove a finished command; it will run again (harmless: commands are idempotent)", "id", c.ID, "err", derr)
	}
}

func (a *Agent) minBackoff() time.Duration {
	if a.RetryMin > 0 {
		return a.RetryMin
	}
	return 2 * time.Second
}

func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}
