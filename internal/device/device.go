// Package device opens a configured model for one operation: its slot store
// under the lock, recovered, with an updater wired to the model's health checks
// and to its event outbox. The command line and the agent both act on models
// through it, so a model behaves the same whichever of them touches it.
package device

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/health"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// Model is one configured model, open for an operation. Close it when done.
type Model struct {
	Config  *config.Config
	Model   *config.Model
	Store   *slots.Store
	Updater *update.Updater

	unit *unit // nil without a configured unit
}

// StoreConfig locates model m's files.
func StoreConfig(cfg *config.Config, m *config.Model) slots.Config {
	return slots.Config{Dir: cfg.StateDir(m), Model: m.Name, Link: m.Link}
}

// OutboxDir is where model m's events wait for delivery.
func OutboxDir(cfg *config.Config, m *config.Model) string {
	return filepath.Join(cfg.StateDir(m), "outbox")
}

// Open opens model m under its lock, recovers what a crash interrupted and
// resumes an interrupted trial, as every operation must before it acts. op
// names the operation for the lock holder message.
func Open(ctx context.Context, cfg *config.Config, m *config.Model, op string) (*Model, error) {
	return open(ctx, cfg, m, op, true)
}

// OpenToEndTrial opens model m like Open but leaves a pending trial alone, for
// the operations that end a trial by themselves (rollback, mark-good,
// mark-bad). Resuming first would be wrong for them: `rollback --if-trial`, run
// by OnFailure= because the new version just failed for good, would restart
// that version once more and watch it fail again before it could roll back;
// and a person's mark-good must not wait for a window it overrides.
func OpenToEndTrial(ctx context.Context, cfg *config.Config, m *config.Model, op string) (*Model, error) {
	return open(ctx, cfg, m, op, false)
}

func open(ctx context.Context, cfg *config.Config, m *config.Model, op string, resume bool) (*Model, error) {
	s, err := slots.Open(ctx, StoreConfig(cfg, m), op)
	if err != nil {
		return nil, err
	}
	o, err := OpenOutbox(cfg, m)
	if err != nil {
		s.Close()
		return nil, err
	}
	d := &Model{Config: cfg, Model: m, Store: s}
	if m.Unit != "" {
		if d.unit, err = newUnit(ctx, cfg, m); err != nil {
			s.Close()
			return nil, err
		}
	}
	d.Updater = &update.Updater{Store: s, Workers: verify.Workers(), Confirm: d.confirmer(),
		Reporter: &report.OutboxReporter{Outbox: o, DeviceID: cfg.DeviceID, Model: m.Name}}
	if !resume {
		return d, nil
	}
	if _, err := d.Updater.Resume(ctx, m.Health.MaxAttempts); err != nil && !errors.Is(err, update.ErrRolledBack) {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the model's lock and its connection to the service manager.
func (d *Model) Close() error {
	if d.unit != nil {
		d.unit.close()
	}
	return d.Store.Close()
}

// OpenOutbox opens model m's outbox with the sinks the platform settings turn on.
func OpenOutbox(cfg *config.Config, m *config.Model) (*report.Outbox, error) {
	return report.OpenOutbox(OutboxDir(cfg, m), 0, report.SinkNames(cfg.Platform.MQTTURL, cfg.Platform.HTTPURL)...)
}

// confirmer builds the model's health contract; nil when there is nothing to
// confirm (no unit, no probe, no checks), so activation commits once the link
// is swapped.
func (d *Model) confirmer() update.Confirmer {
	m, h := d.Model, d.Model.Health
	if d.unit == nil && h.ProbeURL == "" && len(h.Checks) == 0 {
		return nil
	}
	c := &health.Confirmer{Model: m.Name, Link: d.Store.LinkPath(), SlotDir: d.Store.SlotDir,
		StartTimeout: time.Duration(h.StartTimeout), Window: time.Duration(h.ConfirmWindow),
		ProbeURL: h.ProbeURL, MaxLatency: time.Duration(h.MaxLatency),
		Checks: health.Checks{Commands: h.Checks, Timeout: time.Duration(h.StartTimeout)}}
	if d.unit != nil {
		c.Unit = d.unit
	}
	return c
}
