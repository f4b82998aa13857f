package main

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

// target is the configured model a command acts on, with its store open.
type target struct {
	cfg     *config.Config
	model   *config.Model
	store   *slots.Store
	updater *update.Updater
}

func loadModel(g *globalOptions) (*config.Config, *config.Model, error) {
	cfg, err := config.Load(g.config)
	if err != nil {
		return nil, nil, err
	}
	m, err := cfg.Model(g.model)
	if err != nil {
		return nil, nil, err
	}
	return cfg, m, nil
}

func storeConfig(cfg *config.Config, m *config.Model) slots.Config {
	return slots.Config{Dir: cfg.StateDir(m), Model: m.Name, Link: m.Link}
}

// openTarget opens the model's store under its lock, recovers what a crash
// interrupted, and resumes an interrupted trial, as every command must before it
// acts.
func openTarget(ctx context.Context, g *globalOptions, op string) (*target, error) {
	cfg, m, err := loadModel(g)
	if err != nil {
		return nil, err
	}
	return openModel(ctx, cfg, m, op)
}

func openModel(ctx context.Context, cfg *config.Config, m *config.Model, op string) (*target, error) {
	if what := m.Unsupported(); what != "" {
		return nil, fmt.Errorf("%w: model %s: the setting %s is not supported by this build yet; remove it (link swap and check commands work)",
			config.ErrConfig, m.Name, what)
	}
	s, err := slots.Open(ctx, storeConfig(cfg, m), op)
	if err != nil {
		return nil, err
	}
	rep, err := reporter(cfg, m)
	if err != nil {
		s.Close()
		return nil, err
	}
	t := &target{cfg: cfg, model: m, store: s,
		updater: &update.Updater{Store: s, Workers: verify.Workers(), Confirm: confirmer(m, s), Reporter: rep}}
	if _, err := t.updater.Resume(ctx, m.Health.MaxAttempts); err != nil && !errors.Is(err, update.ErrRolledBack) {
		s.Close()
		return nil, err
	}
	return t, nil
}

func (t *target) close() { t.store.Close() }

// reporter queues the model's update events in its outbox, for the agent to
// deliver (DESIGN.md § Events); the outbox lives in the model's state directory.
func reporter(cfg *config.Config, m *config.Model) (update.Reporter, error) {
	o, err := report.OpenOutbox(filepath.Join(cfg.StateDir(m), "outbox"), 0,
		report.SinkNames(cfg.Platform.MQTTURL, cfg.Platform.HTTPURL)...)
	if err != nil {
		return nil, err
	}
	return &report.OutboxReporter{Outbox: o, DeviceID: cfg.DeviceID, Model: m.Name}, nil
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
