package agent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
)

// Bounds of the restore retries: a version that a revert or rollback went
// back to but that does not serve yet (the unit refused to start, the service
// manager was away) is tried again, each time later, until it answers.
const (
	restoreCheckEvery = 2 * time.Second
	restoreBackoffMax = 5 * time.Minute
)

// restoreLoop finishes pending restores while the agent runs, with backoff on
// the number of failed tries state.json counts; each try reports its outcome
// (failed, or rolled_back once the version answers).
func (a *Agent) restoreLoop(ctx context.Context) {
	for {
		a.live.beat(loopRestore)
		for i := range a.Config.Models {
			a.retryRestore(ctx, &a.Config.Models[i])
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.restoreEvery()):
		}
	}
}

func (a *Agent) retryRestore(ctx context.Context, m *config.Model) {
	v, err := slots.OpenView(session.StoreConfig(a.Config, m))
	if err != nil {
		return // reported by whatever opens the model
	}
	r := v.State().Restore
	if r == nil || time.Now().Before(r.Since.Add(restoreBackoff(r.Attempts, a.restoreEvery()))) {
		return
	}
	d, err := session.OpenToEndTrial(ctx, a.Config, m, "agent restore")
	if errors.Is(err, slots.ErrBusy) {
		return // another operation has the model; it finishes the restore itself
	}
	if err != nil {
		slog.Warn("agent: cannot open the model to finish its restore", "model", m.Name, "err", err)
		return
	}
	defer d.Close()
	if _, err := d.Updater.FinishRestore(ctx); err != nil && ctx.Err() == nil {
		slog.Warn("agent: the previous version is still not serving; trying again later", "model", m.Name, "version", r.Version, "tries", r.Attempts+1, "err", err)
	}
}

// restoreBackoff is how long after the restore began the next try is due,
// after attempts failed tries: doubling from first, at most restoreBackoffMax
// apart.
func restoreBackoff(attempts int, first time.Duration) time.Duration {
	var total, step time.Duration = 0, first
	for range attempts {
		total += step
		step = min(2*step, restoreBackoffMax)
	}
	return total
}

func (a *Agent) restoreEvery() time.Duration {
	if a.RetryMin > 0 {
		return a.RetryMin
	}
	return restoreCheckEvery
}
