// Package session opens one configured model for one operation — a session:
// its slot store under the lock, recovered, with an updater wired to the
// model's unit (systemd.Unit), probe and checks (health), its event outbox
// (report) and its download step (fetch.Source). The command line and the
// agent both act on models through it, so a model behaves the same whichever
// of them touches it.
//
// Its import rule (checked by internal/deptest): session wires the step
// packages together and is imported only by the top (cmd/modelslot and
// internal/agent); no step package imports it, and it holds no step of its
// own — resolving, downloading, judging and switching live in fetch, health,
// systemd, update and slots.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/health"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/systemd"
	"github.com/modelslot/modelslot/verify"
)

// Session is one configured model, open for one operation. Close it when done.
type Session struct {
	Config  *config.Config
	Model   *config.Model
	Store   *slots.Store
	Updater *update.Updater

	unit     *systemd.Unit   // nil without a configured unit
	unitLock *slots.FileLock // held while this model may activate its unit
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
func Open(ctx context.Context, cfg *config.Config, m *config.Model, op string) (*Session, error) {
	return open(ctx, cfg, m, op, true)
}

// OpenToEndTrial opens model m like Open but leaves a pending trial alone, for
// the operations that end a trial by themselves (rollback, mark-good,
// mark-bad). Resuming first would be wrong for them: `rollback --if-trial`, run
// by OnFailure= because the new version just failed for good, would restart
// that version once more and watch it fail again before it could roll back;
// and a person's mark-good must not wait for a window it overrides.
func OpenToEndTrial(ctx context.Context, cfg *config.Config, m *config.Model, op string) (*Session, error) {
	return open(ctx, cfg, m, op, false)
}

func open(ctx context.Context, cfg *config.Config, m *config.Model, op string, resume bool) (*Session, error) {
	s, err := slots.Open(ctx, StoreConfig(cfg, m), op)
	if err != nil {
		return nil, err
	}
	o, err := OpenOutbox(cfg, m)
	if err != nil {
		s.Close()
		return nil, err
	}
	d := &Session{Config: cfg, Model: m, Store: s}
	if m.Unit != "" {
		if d.unit, err = systemd.NewUnit(systemd.Settings{Scope: cfg.Systemd.Scope, Bus: cfg.Systemd.Bus}, m.Unit, m.Activation,
			systemd.Limits{MaxMemory: uint64(m.Health.MaxMemory)}); err != nil {
			s.Close()
			return nil, fmt.Errorf("model %s: %w; check [systemd] in the config", m.Name, err)
		}
		// Trials are serialized per unit: a second model's activation would
		// restart the unit under the first one's window.
		if d.unitLock, err = slots.LockFile(unitLockPath(cfg, m.Unit), op+" ("+m.Name+")"); err != nil {
			d.Close()
			return nil, fmt.Errorf("model %s: another model's operation is using unit %s: %w", m.Name, m.Unit, err)
		}
	}
	d.Updater = &update.Updater{Store: s, Workers: verify.Workers(), Confirm: d.confirmer(),
		Reporter: &report.OutboxReporter{Outbox: o, DeviceID: cfg.DeviceID, Model: m.Name}}
	if d.unit != nil {
		d.Updater.Preflight = d.preflight
	}
	if !resume {
		return d, nil
	}
	if err := d.Recover(ctx); err != nil && !errors.Is(err, update.ErrRestoreFailed) {
		d.Close()
		return nil, err
	} else if err != nil {
		// Reported already and kept pending (status shows it); the operation
		// that opened the model, an install say, may go on.
		slog.Warn("the previous version is not serving yet; modelslot keeps trying", "model", m.Name, "err", err)
	}
	return d, nil
}

// Recover resumes an interrupted trial (past max_attempts it reverts), then
// finishes a pending restore. A restore that fails again stays pending; the
// error wraps update.ErrRestoreFailed.
func (d *Session) Recover(ctx context.Context) error {
	if _, err := d.Updater.Resume(ctx, d.Model.Health.MaxAttempts); err != nil {
		if !errors.Is(err, update.ErrRolledBack) || errors.Is(err, update.ErrRestoreFailed) {
			return err
		}
	}
	_, err := d.Updater.FinishRestore(ctx)
	return err
}

// preflight runs before the link moves: the unit must be loadable, and no
// other model on the same unit may be in a trial (one left by a crash, whose
// lock is free again).
func (d *Session) preflight(ctx context.Context) error {
	if err := d.unit.Check(ctx); err != nil {
		return err
	}
	for _, other := range ModelsOnUnit(d.Config, d.Model.Unit) {
		if other.Name == d.Model.Name {
			continue
		}
		v, err := slots.OpenView(StoreConfig(d.Config, other))
		if err != nil {
			continue // a store never opened, or unreadable: it has no trial we could honour
		}
		if t := v.State().Trial; t != nil {
			return fmt.Errorf("%w: model %s is in trial of %s on unit %s; its trial must end first (run `modelslot --model %s recover`, or wait for the agent)",
				slots.ErrBusy, other.Name, t.Version, d.Model.Unit, other.Name)
		}
	}
	return nil
}

// ModelsOnUnit lists the configured models served by unit.
func ModelsOnUnit(cfg *config.Config, unit string) []*config.Model {
	var out []*config.Model
	for i := range cfg.Models {
		if cfg.Models[i].Unit == unit {
			out = append(out, &cfg.Models[i])
		}
	}
	return out
}

func unitLockPath(cfg *config.Config, unit string) string {
	return filepath.Join(cfg.StateRoot, "unit-"+unit+".lock")
}

// Close releases the model's lock and its connection to the service manager.
func (d *Session) Close() error {
	if d.unit != nil {
		d.unit.Close()
	}
	d.unitLock.Close()
	return d.Store.Close()
}

// OpenOutbox opens model m's outbox with the sinks the platform settings turn on.
func OpenOutbox(cfg *config.Config, m *config.Model) (*report.Outbox, error) {
	return report.OpenOutbox(OutboxDir(cfg, m), 0, report.SinkNames(cfg.Platform.MQTTURL, cfg.Platform.HTTPURL)...)
}

// DeviceOutboxDir queues the events that belong to no configured model: the
// answer to a command naming a model the device does not have. "_device"
// cannot be a model's directory (a model name starts with a letter or digit).
func DeviceOutboxDir(cfg *config.Config) string {
	return filepath.Join(cfg.StateRoot, "_device", "outbox")
}

// OpenDeviceOutbox opens (creating it if needed) the device's own outbox.
func OpenDeviceOutbox(cfg *config.Config) (*report.Outbox, error) {
	return report.OpenOutbox(DeviceOutboxDir(cfg), 0, report.SinkNames(cfg.Platform.MQTTURL, cfg.Platform.HTTPURL)...)
}

// confirmer builds the model's health contract; nil when there is nothing to
// confirm (no unit, no probe, no checks), so activation commits once the link
// is swapped.
func (d *Session) confirmer() update.Confirmer {
	m, h := d.Model, d.Model.Health
	if d.unit == nil && h.ProbeURL == "" && len(h.Checks) == 0 {
		return nil
	}
	c := &health.Confirmer{Model: m.Name, Link: d.Store.LinkPath(), SlotDir: d.Store.SlotDir, Manifest: d.Store.SlotManifest,
		StartTimeout: time.Duration(h.StartTimeout), Window: time.Duration(h.ConfirmWindow),
		ProbeURL: h.ProbeURL, MaxLatency: time.Duration(h.MaxLatency), VersionCheck: h.ProbeVersion,
		Checks: health.Checks{Commands: h.Checks, Timeout: time.Duration(h.StartTimeout)}}
	if d.unit != nil {
		c.Unit = d.unit
	}
	return c
}

// UnitOutput returns up to n of the last lines the model's unit printed, for
// status; nil without a unit or when they cannot be read.
func (d *Session) UnitOutput(ctx context.Context, n int) []string {
	if d.unit == nil {
		return nil
	}
	return d.unit.OutputTail(ctx, n)
}
