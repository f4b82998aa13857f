package health

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/reason"

	"github.com/modelslot/modelslot/verify"
)

// Defaults of the health contract when the config leaves them out.
const (
	DefaultCheckTimeout = 60 * time.Second
	DefaultStartTimeout = 60 * time.Second
	// DefaultWindow is how long a unit must stay healthy when confirm_window
	// is not set (docs/config.md); without a unit there is nothing to watch.
	DefaultWindow       = 60 * time.Second
	DefaultProbeSamples = 5
	// DefaultTolerance applies when the manifest names none: the same default
	// as the loader's own probe (docs/demo-server.md), so a model that passes
	// its probe inside the server passes modelslot's too.
	DefaultTolerance = 1e-4
	probeRetryEvery  = 200 * time.Millisecond
	// Backoff between two tries of a restore.
	restoreRetryFirst = 500 * time.Millisecond
	restoreRetryMax   = 5 * time.Second
)

// ReasonStartTimeout is the contract's reason for a unit that did not come up.
const ReasonStartTimeout = reason.StartTimeout

// Unit is what confirmation needs from the service manager; device wires it to
// the systemd package. Errors start with a failure reason of the contract
// ("watchdog_timeout: …").
type Unit interface {
	// Activate restarts or reloads the unit, as configured, and waits for the
	// job. ctx carries the start timeout.
	Activate(ctx context.Context) error
	// Watch reports the unit's first failure until ctx ends; a channel closed
	// without a value means healthy for the whole time.
	Watch(ctx context.Context) <-chan error
}

// Confirmer decides whether an activated version may be kept, by the model's
// health contract (DESIGN.md § Health contract): the unit comes up within the
// start timeout and stays healthy (no watchdog kill, restart, failure or memory
// over the limit) for the whole confirmation window; the probe inference on the
// model's own test data is answered by the new version, correctly and fast
// enough; every check command exits 0. It implements update.Confirmer and
// update.Restorer.
type Confirmer struct {
	Model   string
	Link    string
	SlotDir func(slot string) string
	// Manifest returns the manifest slot was verified against
	// (slots.Store.SlotManifest): the probe reads the model's own test data
	// from it. Needed with a ProbeURL.
	Manifest func(slot string) (*verify.Manifest, error)

	Unit         Unit          // nil: no unit to activate or watch
	StartTimeout time.Duration // for the unit to be up and the probe to answer the new version
	Window       time.Duration // how long the unit must stay healthy; DefaultWindow if 0 with a Unit
	ProbeURL     string        // "" = no probe
	MaxLatency   time.Duration
	ProbeSamples int
	// VersionCheck is where a probe answer names its version. Off: the
	// answer names none, and the proof that the new version answers is the
	// unit's main PID, which must differ from the one before the activation
	// (Unit must be a MainPIDer, and activation a restart: a reload keeps
	// the process, so config refuses reload with off).
	VersionCheck VersionCheck
	Checks       Checks

	// RestoreTimeout bounds one Restore, all its tries and their probes: how
	// long the previous version may take to answer again after a revert;
	// StartTimeout if 0. Past it the restore stays pending (update).
	RestoreTimeout time.Duration
}

// Confirm activates slot's version and judges it. Every wait is bounded: a
// check that times out is a failure, never a hang. The confirmation window
// starts once the unit is up (a slow start must not eat the window), and the
// unit is watched from then on, also while the probe and the checks run: the
// first failure of the unit ends the trial at once, whatever else is pending.
func (c *Confirmer) Confirm(ctx context.Context, slot, version string) (verdict error) {
	defer func() { verdict = c.withOutput(ctx, verdict) }() // a *Failure with the unit's last lines
	start := time.Now()
	t, err := c.newTrial(ctx, slot, version)
	if err != nil {
		return err
	}
	if err := c.activate(ctx); err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var failures <-chan error
	if c.Unit != nil {
		failures = c.Unit.Watch(wctx)
	}
	end := time.Now().Add(c.window())
	err = c.whileWatched(ctx, failures, func(ctx context.Context) error {
		if err := c.probeUntilReady(ctx, t, start, c.startTimeout()); err != nil {
			return err
		}
		return c.runChecks(ctx, slot, version)
	})
	if err != nil {
		return err
	}
	if err := c.wait(ctx, failures, end); err != nil {
		return err
	}
	if c.window() > 0 && c.ProbeURL != "" { // still answering at the end of the window?
		if err := c.whileWatched(ctx, failures, func(ctx context.Context) error { return c.probeOnce(ctx, t) }); err != nil {
			return err
		}
	}
	return endWatch(stop, failures)
}

// endWatch stops the watch and takes its verdict: nil only when the unit was
// seen healthy to the end. A watch that could not reach the manager when the
// window ended goes on until it can judge (or gives up: never a silent pass),
// so nothing is committed while nobody can see the unit.
func endWatch(stop context.CancelFunc, failures <-chan error) error {
	if failures == nil {
		return nil
	}
	stop()
	for f := range failures {
		if f != nil {
			return f
		}
	}
	return nil
}

// whileWatched runs fn while watching the unit: a unit failure cancels fn and
// is the verdict. When fn fails, a unit failure already seen is preferred as
// the reason: a probe refused because the server crashed is a crash.
func (c *Confirmer) whileWatched(ctx context.Context, failures <-chan error, fn func(context.Context) error) error {
	if failures == nil {
		return fn(ctx)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(fctx) }()
	select {
	case err := <-done:
		if err != nil {
			if f := seen(failures); f != nil {
				return f
			}
		}
		return err
	case f, ok := <-failures:
		cancel()
		ferr := <-done // bounded: fn honours its context
		if ok && f != nil {
			return f
		}
		return ferr
	}
}

// seen returns a failure the watch has reported already, without waiting.
func seen(failures <-chan error) error {
	select {
	case f := <-failures:
		return f
	default:
		return nil
	}
}

// Restore brings the previous version back after a revert or rollback: the
// unit is revived (failed state and start limit cleared, its socket started)
// and activated again, and must answer the probe with that version. What
// systemd refuses at one moment (a start limit, a queued job, a manager that
// is restarting) often passes the next, so a failed try is repeated with
// backoff until RestoreTimeout; the caller keeps the restore pending past that.
func (c *Confirmer) Restore(ctx context.Context, slot, version string) (verdict error) {
	defer func() { verdict = c.withOutput(ctx, verdict) }() // a *Failure with the unit's last lines
	deadline := time.Now().Add(c.restoreTimeout())
	wait := restoreRetryFirst
	for {
		err := c.restoreOnce(ctx, slot, version, deadline)
		if err == nil || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		slog.Warn("restore of the previous version failed; trying again", "model", c.Model, "version", version, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, restoreRetryMax)
	}
}

func (c *Confirmer) restoreOnce(ctx context.Context, slot, version string, deadline time.Time) error {
	start := time.Now()
	if r, ok := c.Unit.(Reviver); ok {
		if err := r.Revive(ctx); err != nil {
			slog.Warn("could not revive the unit before restoring; activating anyway", "model", c.Model, "err", err)
		}
	}
	t, err := c.newTrial(ctx, slot, version)
	if err != nil {
		return err
	}
	if err := c.activate(ctx); err != nil {
		return err
	}
	return c.probeUntilReady(ctx, t, start, time.Until(deadline))
}

// Reviver is a Unit that can be readied for a deliberate start: failed state
// and start-limit counter cleared, its socket listening, processes a lost
// service manager left behind ended.
type Reviver interface {
	Revive(ctx context.Context) error
}

func (c *Confirmer) restoreTimeout() time.Duration {
	if c.RestoreTimeout > 0 {
		return c.RestoreTimeout
	}
	return c.startTimeout()
}

func (c *Confirmer) activate(ctx context.Context) error {
	if c.Unit == nil {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, c.startTimeout())
	defer cancel()
	err := c.Unit.Activate(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil && !hasCode(err) {
		return reason.New(ReasonStartTimeout, "the unit was not up within %s: %v", c.startTimeout(), err)
	}
	return err
}

// wait watches the unit until deadline; the first failure ends the trial. A
// failure reported already counts even when the deadline has passed.
func (c *Confirmer) wait(ctx context.Context, failures <-chan error, deadline time.Time) error {
	if failures == nil {
		return ctx.Err()
	}
	if f := seen(failures); f != nil {
		return f
	}
	t := time.NewTimer(max(time.Until(deadline), 0))
	defer t.Stop()
	select {
	case err, ok := <-failures:
		if ok && err != nil {
			return err
		}
		return ctx.Err()
	case <-t.C:
		return seen(failures)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probeUntilReady retries the probe while the answer comes from the old version
// or nothing answers yet (a reload takes a moment after its job ends), until
// limit has passed since start; any other failure is final at once.
func (c *Confirmer) probeUntilReady(ctx context.Context, t trial, start time.Time, limit time.Duration) error {
	if c.ProbeURL == "" {
		return nil
	}
	for {
		err := c.probeOnce(ctx, t)
		if err == nil || !errors.Is(err, errNotReady) || ctx.Err() != nil || time.Since(start) > limit {
			return err
		}
		time.Sleep(probeRetryEvery)
	}
}

func (c *Confirmer) probeOnce(ctx context.Context, t trial) error {
	if err := c.newProcess(ctx, t); err != nil {
		return err
	}
	p, err := c.probe(t.slot, t.version)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// probe builds the probe from the test data the slot's model ships.
func (c *Confirmer) probe(slot, version string) (Probe, error) {
	dir := c.SlotDir(slot)
	if c.Manifest == nil {
		return Probe{}, reason.New(ReasonHealthCheck, "internal error: a probe without the slot's manifest")
	}
	m, err := c.Manifest(slot)
	if err != nil {
		return Probe{}, reason.New(ReasonHealthCheck, "read the slot's manifest: %w", err)
	}
	if m.Probe == nil {
		return Probe{}, reason.New(ReasonHealthCheck, "probe_url is set but model %s %s ships no probe data (probe/input.json, probe/expected.json)", m.Model, m.Version)
	}
	in, err1 := os.ReadFile(filepath.Join(dir, filepath.FromSlash(m.Probe.Input)))
	want, err2 := os.ReadFile(filepath.Join(dir, filepath.FromSlash(m.Probe.Expected)))
	if err := errors.Join(err1, err2); err != nil {
		return Probe{}, reason.New(ReasonHealthCheck, "read probe data: %v", err)
	}
	tol := m.Probe.Tolerance
	if tol == 0 {
		tol = DefaultTolerance
	}
	tols, err := readTolerances(dir, m.Probe.Tolerances)
	if err != nil {
		return Probe{}, err
	}
	return Probe{URL: c.ProbeURL, Input: in, Expected: want, Tolerance: tol, Tolerances: tols,
		Version: version, VersionCheck: c.VersionCheck,
		Samples: c.samples(), MaxLatency: c.MaxLatency, Timeout: max(2*c.MaxLatency, 10*time.Second)}, nil
}

// runChecks runs the check commands. Checks see the version under test in
// their environment: MODELSLOT_MODEL, MODELSLOT_VERSION, MODELSLOT_SLOT,
// MODELSLOT_SLOT_DIR and MODELSLOT_LINK.
func (c *Confirmer) runChecks(ctx context.Context, slot, version string) error {
	if len(c.Checks.Commands) == 0 {
		return nil
	}
	checks := c.Checks
	if checks.Timeout <= 0 {
		checks.Timeout = DefaultCheckTimeout
	}
	checks.Env = append(checks.Env[:len(checks.Env):len(checks.Env)],
		"MODELSLOT_MODEL="+c.Model, "MODELSLOT_VERSION="+version, "MODELSLOT_SLOT="+slot,
		"MODELSLOT_SLOT_DIR="+c.SlotDir(slot), "MODELSLOT_LINK="+c.Link)
	return checks.Run(ctx)
}

func (c *Confirmer) startTimeout() time.Duration {
	if c.StartTimeout > 0 {
		return c.StartTimeout
	}
	return DefaultStartTimeout
}

func (c *Confirmer) window() time.Duration {
	if c.Window <= 0 && c.Unit != nil {
		return DefaultWindow
	}
	return c.Window
}

func (c *Confirmer) samples() int {
	if c.ProbeSamples > 0 {
		return c.ProbeSamples
	}
	return DefaultProbeSamples
}

// hasCode reports whether err carries a reason code already.
func hasCode(err error) bool {
	_, ok := reason.Of(err)
	return ok
}
