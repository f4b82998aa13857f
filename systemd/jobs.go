package systemd

import (
	"context"
	"errors"
	"fmt"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// ErrStartLimitHit marks a job refused because the unit was started too often
// (StartLimitBurst); ResetFailed clears it. Test with errors.Is.
var ErrStartLimitHit = errors.New("start limit hit")

// jobPoll is how often a waiting job also looks at the unit, to catch a crash
// loop early: a start job of a Restart= unit can outlive many crashes.
const jobPoll = 200 * time.Millisecond

// JobError is a job that ended with a result other than "done".
type JobError struct {
	Unit   string
	Job    string // "restart", "reload", "start", "stop"
	Result string // systemd's job result: failed, timeout, canceled, dependency, skipped…
	// UnitResult is the unit's Result property when the job ended (exit-code,
	// watchdog, start-limit-hit…), "" if unknown.
	UnitResult string
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("%s %s: job result %q", e.Job, e.Unit, e.Result)
	if e.UnitResult != "" {
		msg += fmt.Sprintf(" (unit result %q)", e.UnitResult)
	}
	if e.UnitResult == "start-limit-hit" {
		return msg + ": it was started too often; reset it (systemctl reset-failed " + e.Unit +
			", and its .socket if it has one, then start the socket) before starting it again"
	}
	return msg + ": see systemctl status " + e.Unit
}

// Is makes errors.Is(err, ErrStartLimitHit) true for a start-limit refusal.
func (e *JobError) Is(target error) bool {
	return target == ErrStartLimitHit && e.UnitResult == "start-limit-hit"
}

// jobFunc queues one job through go-systemd; the result arrives on ch.
type jobFunc func(c *sddbus.Conn, ctx context.Context, unit, mode string, ch chan<- string) (int, error)

// Restart restarts unit and waits for the job to finish: for Type=notify that is
// when the new process sent READY=1. An unhealthy outcome is a *Failure (the job
// failed, the unit crash-looped, or ctx's deadline passed before it was ready:
// start_timeout); a refused call (unknown unit, no bus) is a plain error.
func (m *Manager) Restart(ctx context.Context, unit string) error {
	return m.runJob(ctx, "restart", unit, (*sddbus.Conn).RestartUnitContext)
}

// Reload asks unit to reload (ExecReload=) and waits for the job, with the same
// outcomes as Restart. Whether the reload job waits for the service to finish its
// reload depends on the unit: `kill -HUP` returns at once, so confirm the new
// version yourself.
func (m *Manager) Reload(ctx context.Context, unit string) error {
	return m.runJob(ctx, "reload", unit, (*sddbus.Conn).ReloadUnitContext)
}

// Start starts unit and waits for the job, with the same outcomes as Restart.
func (m *Manager) Start(ctx context.Context, unit string) error {
	return m.runJob(ctx, "start", unit, (*sddbus.Conn).StartUnitContext)
}

// Stop stops unit and waits for the job.
func (m *Manager) Stop(ctx context.Context, unit string) error {
	return m.runJob(ctx, "stop", unit, (*sddbus.Conn).StopUnitContext)
}

// ResetFailed clears the failed state and the start-limit counter of unit, so it
// may be started again after ErrStartLimitHit. A .socket unit in front of the
// service fails too when the service hits its limit: reset and start it as well.
func (m *Manager) ResetFailed(ctx context.Context, unit string) error {
	conn, err := m.connection(ctx)
	if err != nil {
		return err
	}
	if err := conn.ResetFailedUnitContext(ctx, unit); err != nil {
		return fmt.Errorf("reset-failed %s: %w", unit, err)
	}
	return nil
}

func (m *Manager) runJob(ctx context.Context, job, unit string, queue jobFunc) error {
	conn, err := m.connection(ctx)
	if err != nil {
		return err
	}
	log := m.log.With("unit", unit, "job", job)
	ch := make(chan string, 1) // buffered: go-systemd's sender must never block on us
	started := time.Now()
	if _, err := queue(conn, ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w%s", job, unit, err, refusalHint(job))
	}
	err = m.waitJob(ctx, job, unit, ch)
	log.Info("systemd job finished", "took", time.Since(started).Round(time.Millisecond), "err", err)
	return err
}

// waitJob waits for the job's result while checking the unit for a crash loop.
// A manager that goes away while the job runs takes the job with it (its
// result never arrives): that is ReasonUnreachable, never the unit's fault.
func (m *Manager) waitJob(ctx context.Context, job, unit string, ch <-chan string) error {
	tick := time.NewTicker(jobPoll)
	defer tick.Stop()
	var w watchState
	var last UnitStatus // the last status read, for a failure's report
	lost := false       // a look at the unit failed: the manager may be gone
	for {
		select {
		case result := <-ch:
			return m.jobResult(ctx, job, unit, result)
		case <-tick.C:
			if job == "stop" {
				continue
			}
			st, err := m.Status(ctx, unit)
			switch {
			case err != nil:
				lost = true
			case lost:
				if healthy(st) && st.InvocationID == last.InvocationID {
					return nil // the same run is up: the manager re-executed and the job's signal was lost
				}
				return &Failure{Unit: unit, Reason: ReasonUnreachable, Status: last, At: time.Now(),
					Detail: fmt.Sprintf("the service manager went away while the %s job ran; now %s", job, describe(st))}
			default:
				last = st
				if f := w.duringJob(st); f != nil {
					return f
				}
			}
		case <-ctx.Done():
			if lost {
				return &Failure{Unit: unit, Reason: ReasonUnreachable, Status: last, At: time.Now(), Err: ctx.Err(),
					Detail: fmt.Sprintf("the service manager went away while the %s job ran and did not come back", job)}
			}
			return m.jobAbandoned(job, unit, ctx.Err())
		}
	}
}

// jobResult turns a finished job into nil or a *Failure that says why.
func (m *Manager) jobResult(ctx context.Context, job, unit, result string) error {
	if result == "done" {
		return nil
	}
	st, err := m.Status(ctx, unit)
	jerr := &JobError{Unit: unit, Job: job, Result: result}
	if err == nil {
		jerr.UnitResult = st.Result
	}
	if job == "stop" || result == "canceled" {
		return jerr
	}
	return &Failure{Unit: unit, Reason: classify(st, result), Detail: jerr.Error(), Status: st, Err: jerr}
}

// jobAbandoned reports a job whose context ended: a deadline means the unit was
// not ready in time; a cancellation (SIGTERM of our process) is no verdict.
func (m *Manager) jobAbandoned(job, unit string, cause error) error {
	if !errors.Is(cause, context.DeadlineExceeded) || job == "stop" {
		return fmt.Errorf("%s %s: stopped waiting for the job: %w", job, unit, cause)
	}
	// The caller's context is over; read the state with a short one of our own.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, _ := m.Status(ctx, unit)
	return &Failure{Unit: unit, Reason: ReasonStartTimeout, Status: st, Err: cause,
		Detail: fmt.Sprintf("%s %s: not ready before the deadline (%s/%s)", job, unit, st.ActiveState, st.SubState)}
}

// refusalHint says what to do when the manager refuses to queue a job.
func refusalHint(job string) string {
	if job == "reload" {
		return " (a reload needs ExecReload= in the unit, else activate by restart)"
	}
	return " (check the unit name and its `systemctl status`)"
}
