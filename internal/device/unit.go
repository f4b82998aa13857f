package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/systemd"
)

// unit adapts a systemd manager to health.Unit for one configured unit.
type unit struct {
	mgr        *systemd.Manager
	name       string
	activation string // restart or reload
	limits     systemd.Limits
}

func newUnit(ctx context.Context, cfg *config.Config, m *config.Model) (*unit, error) {
	mgr, err := systemd.Connect(ctx, systemd.Settings{Scope: cfg.Systemd.Scope, Bus: cfg.Systemd.Bus}, nil)
	if err != nil {
		return nil, fmt.Errorf("model %s: connect to the %s service manager to control %s: %w; check [systemd] in the config",
			m.Name, cfg.Systemd.Scope, m.Unit, err)
	}
	return &unit{mgr: mgr, name: m.Unit, activation: m.Activation,
		limits: systemd.Limits{MaxMemory: uint64(m.Health.MaxMemory)}}, nil
}

// Activate restarts or reloads the unit and waits for the job.
func (u *unit) Activate(ctx context.Context) error {
	running := u.prepare(ctx)
	var err error
	if u.activation == "reload" && running {
		err = u.mgr.Reload(ctx, u.name)
	} else {
		err = u.mgr.Restart(ctx, u.name)
	}
	if startLimitHit(err) {
		// A burst of manual restarts (updates and reverts) must not lock the
		// unit out: clear the counter and try once more.
		if rerr := u.mgr.ResetFailed(ctx, u.name); rerr == nil {
			err = u.mgr.Restart(ctx, u.name)
		}
	}
	return withReason(err)
}

// prepare readies the unit for activation and reports whether it is running,
// so that activation = "reload" starts a unit that is not (reload-or-restart:
// systemd refuses to reload an inactive unit, job result "invalid", which is
// no verdict on the model). A failed unit is reset first: one that systemd gave
// up on (OnFailure= fired) is often failed by its start limit, and then
// refuses a restart while its Result may still name the earlier exit (seen:
// "exit-code"), so the refusal is not recognisable as ErrStartLimitHit.
// reset-failed also zeroes the start counter.
func (u *unit) prepare(ctx context.Context) (running bool) {
	st, err := u.mgr.Status(ctx, u.name)
	if err != nil {
		return true // let the activation itself report the trouble
	}
	if st.ActiveState == "failed" {
		if err := u.mgr.ResetFailed(ctx, u.name); err != nil {
			slog.Warn("reset-failed before activation failed; activating anyway", "unit", u.name, "err", err)
		}
	}
	return st.ActiveState == "active" || st.ActiveState == "reloading"
}

// startLimitHit tells a restart refused by the unit's start limit. The job's
// own error says so (ErrStartLimitHit), but the poll that runs beside the job
// often sees the unit failed first and reports crash_loop with the unit's
// Result (seen: a third update within StartLimitIntervalSec was reverted as
// crash_loop, "failed/failed, result start-limit-hit").
func startLimitHit(err error) bool {
	var f *systemd.Failure
	return errors.Is(err, systemd.ErrStartLimitHit) || (errors.As(err, &f) && f.Status.Result == "start-limit-hit")
}

// Watch reports the unit's first health failure.
func (u *unit) Watch(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	in := u.mgr.Watch(ctx, u.name, u.limits)
	go func() {
		defer close(out)
		if f, ok := <-in; ok && f != nil {
			out <- withReason(f)
		}
	}()
	return out
}

// OutputTail returns the unit's last output lines for a failure report
// (health.OutputTailer); nil when systemd keeps them nowhere readable.
func (u *unit) OutputTail(ctx context.Context, n int) []string {
	lines, err := u.mgr.OutputTail(ctx, u.name, n)
	if err != nil {
		slog.Info("the failure report carries no unit output", "unit", u.name, "err", err)
	}
	return lines
}

// UnitOutput returns up to n of the last lines the model's unit printed, for
// status; nil without a unit or when they cannot be read.
func (d *Model) UnitOutput(ctx context.Context, n int) []string {
	if d.unit == nil {
		return nil
	}
	return d.unit.OutputTail(ctx, n)
}

func (u *unit) close() { u.mgr.Close() }

// withReason puts a systemd failure's reason first, as update expects
// ("watchdog_timeout: …").
func withReason(err error) error {
	var f *systemd.Failure
	if errors.As(err, &f) {
		return fmt.Errorf("%s: unit %s: %s", f.Reason, f.Unit, f.Detail)
	}
	return err
}
