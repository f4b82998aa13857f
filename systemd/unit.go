package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// Unit is one unit as modelslot activates and watches it: the adapter of a
// Manager to the health contract's Unit (internal/health), with what it takes
// to get past systemd's refusals (start limits in any form, sockets taken
// down with their service, processes a lost manager left behind). Its
// verdicts are reason.Errors.
type Unit struct {
	mgr        *Manager
	name       string
	activation string // restart or reload
	limits     Limits

	mu sync.Mutex
	// lost: the unit's manager went away while modelslot worked with it; the
	// processes it ran go on unsupervised and are ended before the next
	// activation. lostPID is its main process then, if known; cgroup the
	// unit's control group as last seen (stable for a unit name).
	lost    bool
	lostPID uint32
	cgroup  string
}

// NewUnit prepares the adapter of unit name without dialing: the manager may
// be down right now (restarting), and every call that needs it says so, or is
// retried. activation is "restart" or "reload".
func NewUnit(s Settings, name, activation string, lim Limits) (*Unit, error) {
	mgr, err := New(s, nil)
	if err != nil {
		return nil, err
	}
	return &Unit{mgr: mgr, name: name, activation: activation, limits: lim}, nil
}

// Close closes the connection to the manager.
func (u *Unit) Close() { u.mgr.Close() }

// Check refuses a unit that cannot be started (not found, masked), before
// anything is moved for it.
func (u *Unit) Check(ctx context.Context) error {
	if err := u.mgr.CheckLoadable(ctx, u.name); err != nil {
		if errors.Is(err, ErrUnitUnavailable) {
			return &reason.Error{Code: reason.UnitUnavailable, Detail: err.Error(), Err: err}
		}
		return reason.New(reason.UnitUnavailable, "cannot ask the service manager about %s: %w", u.name, err)
	}
	return nil
}

// Activate restarts or reloads the unit and waits for the job. The unit is
// revived first: modelslot's own restarts are deliberate and must not be
// refused by a start limit meant for crash loops.
func (u *Unit) Activate(ctx context.Context) error {
	running := u.prepare(ctx)
	var err error
	if u.activation == "reload" && running {
		err = u.mgr.Reload(ctx, u.name)
	} else {
		err = u.mgr.Restart(ctx, u.name)
	}
	if startLimitHit(err) {
		// The limit was hit between the reset and the job (auto-restarts of a
		// crashing version count too): clear it and try once more.
		if rerr := u.mgr.Revive(ctx, u.name); rerr == nil {
			err = u.mgr.Restart(ctx, u.name)
		}
	}
	u.noteLost(err)
	return withReason(err)
}

// noteLost remembers what ran of the unit when a failure says its manager went
// away: processes nobody supervises, to end before the next activation.
func (u *Unit) noteLost(err error) {
	var f *Failure
	if !errors.As(err, &f) || f.Reason != ReasonUnreachable {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lost, u.lostPID = true, f.Status.MainPID
	if f.Status.ControlGroup != "" {
		u.cgroup = f.Status.ControlGroup
	}
}

// seen remembers the unit's control group from a status read.
func (u *Unit) seen(st UnitStatus) {
	if st.ControlGroup == "" {
		return
	}
	u.mu.Lock()
	u.cgroup = st.ControlGroup
	u.mu.Unlock()
}

// Revive readies the unit for a restore: processes that a lost manager left
// running are ended (they would go on answering with the version being left),
// then the failed state and start limit are cleared and its socket started.
func (u *Unit) Revive(ctx context.Context) error {
	u.mu.Lock()
	lost, pid, cgroup := u.lost, u.lostPID, u.cgroup
	u.mu.Unlock()
	if lost {
		if _, err := u.mgr.SystemState(ctx); err != nil {
			return fmt.Errorf("the service manager is not back yet: %w", err)
		}
		if st, err := u.mgr.Status(ctx, u.name); err == nil && st.ActiveState == "inactive" {
			// The manager that is back does not run the unit: what runs in its
			// control group was left by the lost one.
			if n := KillLeftovers(ctx, cgroup, pid, 5*time.Second); n > 0 {
				slog.Warn("ended processes the lost service manager left running", "unit", u.name, "processes", n, "cgroup", cgroup)
			}
		}
		u.mu.Lock()
		u.lost = false
		u.mu.Unlock()
	}
	return u.mgr.Revive(ctx, u.name)
}

// prepare readies the unit for activation and reports whether it is running,
// so that activation = "reload" starts a unit that is not (reload-or-restart:
// systemd refuses to reload an inactive unit, job result "invalid", which is
// no verdict on the model). The unit is revived (reset-failed, which also
// zeroes the start counter, and its socket started): one that systemd gave up
// on is often failed by its start limit, and then refuses a restart while its
// Result may still name the earlier exit (seen: "exit-code").
func (u *Unit) prepare(ctx context.Context) (running bool) {
	st, err := u.mgr.Status(ctx, u.name)
	if err != nil {
		return true // let the activation itself report the trouble
	}
	u.seen(st)
	if err := u.mgr.Revive(ctx, u.name); err != nil {
		slog.Warn("reset-failed before activation failed; activating anyway", "unit", u.name, "err", err)
	}
	return st.ActiveState == "active" || st.ActiveState == "reloading"
}

// MainPID returns the unit's main process, 0 when none runs
// (health.MainPIDer: the proof of a new process with probe_version = "off").
// A manager that cannot be asked is no verdict on the version.
func (u *Unit) MainPID(ctx context.Context) (uint32, error) {
	st, err := u.mgr.Status(ctx, u.name)
	if err != nil {
		return 0, reason.New(reason.ManagerUnreachable, "unit %s: cannot read its main PID: %w", u.name, err)
	}
	u.seen(st)
	return st.MainPID, nil
}

// startLimitHit tells a restart refused by the unit's start limit. The job's
// own error says so (ErrStartLimitHit), but the poll that runs beside the job
// often sees the unit failed first and reports crash_loop with the unit's
// Result (seen: a third update within StartLimitIntervalSec was reverted as
// crash_loop, "failed/failed, result start-limit-hit").
func startLimitHit(err error) bool {
	var f *Failure
	return errors.Is(err, ErrStartLimitHit) || (errors.As(err, &f) && f.Status.Result == "start-limit-hit")
}

// Watch reports the unit's first health failure.
func (u *Unit) Watch(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	in := u.mgr.Watch(ctx, u.name, u.limits)
	go func() {
		defer close(out)
		if f, ok := <-in; ok && f != nil {
			u.noteLost(f)
			out <- withReason(f)
		}
	}()
	return out
}

// OutputTail returns the unit's last output lines for a failure report
// (health.OutputTailer); nil when systemd keeps them nowhere readable.
func (u *Unit) OutputTail(ctx context.Context, n int) []string {
	lines, err := u.mgr.OutputTail(ctx, u.name, n)
	if err != nil {
		slog.Info("the failure report carries no unit output", "unit", u.name, "err", err)
	}
	return lines
}

// withReason turns a systemd failure into the contract's typed error (its
// code, the unit and what was seen); other errors pass as they are.
func withReason(err error) error {
	var f *Failure
	if errors.As(err, &f) {
		return f.AsReason()
	}
	return err
}
