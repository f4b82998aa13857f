// Package device opens a configured model for one operation: its slot store
// under the lock, recovered, with an updater wired to the model's health checks
// and to its event outbox. The command line and the agent both act on models
// through it, so a model behaves the same whichever of them touches it.
package device

import (
	"context"
	"errors"
	"fmt"
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
	if what := m.Unsupported(); what != "" {
		return nil, fmt.Errorf("%w: model %s: the setting %s is not supported by this build yet; remove it (link swap and check commands work)",
			config.ErrConfig, m.Name, what)
	}
	s, err := slots.Open(ctx, StoreConfig(cfg, m), op)
	if err != nil {
		return nil, err
	}
	o, err := OpenOutbox(cfg, m)
	if err != nil {
		s.Close()
		return nil, err
	}
	u := &update.Updater{Store: s, Workers: verify.Workers(), Confirm: confirmer(m, s),
		Reporter: &report.OutboxReporter{Outbox: o, DeviceID: cfg.DeviceID, Model: m.Name}}
	if _, err := u.Resume(ctx, m.Health.MaxAttempts); err != nil && !errors.Is(err, update.ErrRolledBack) {
		s.Close()
		return nil, err
	}
	return &Model{Config: cfg, Model: m, Store: s, Updater: u}, nil
}

// Close releases the model's lock.
func (d *Model) Close() error { return d.Store.Close() }

// OpenOutbox opens model m's outbox with the sinks the platform settings turn on.
func OpenOutbox(cfg *config.Config, m *config.Model) (*report.Outbox, error) {
	return report.OpenOutbox(OutboxDir(cfg, m), 0, report.SinkNames(cfg.Platform.MQTTURL, cfg.Platform.HTTPURL)...)
}

// confirmer builds the health check of a model; nil when it has none, so that
// activation commits once the link is swapped.
func confirmer(m *config.Model, s *slots.Store) update.Confirmer {
	if len(m.Health.Checks) == 0 {
		return nil
	}
	return &health.Confirmer{Model: m.Name, Link: s.LinkPath(), SlotDir: s.SlotDir,
		Checks: health.Checks{Commands: m.Health.Checks, Timeout: time.Duration(m.Health.ConfirmWindow)}}
}
