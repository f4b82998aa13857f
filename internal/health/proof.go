package health

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/reason"

	"github.com/modelslot/modelslot/internal/jsonptr"
)

// MainPIDer is a Unit that can tell its main process (systemd's MainPID; 0
// when none runs). With probe_version = "off" it is the only proof that the
// answer comes from a process started after the swap.
type MainPIDer interface {
	MainPID(ctx context.Context) (uint32, error)
}

// trial is what one confirmation or restore probes for: the version, its slot,
// and with the version check off the unit's main PID before the activation.
type trial struct {
	slot, version string
	oldPID        uint32
}

// newTrial records what the probe needs from before the activation.
func (c *Confirmer) newTrial(ctx context.Context, slot, version string) (trial, error) {
	t := trial{slot: slot, version: version}
	if !c.VersionCheck.Off() || c.ProbeURL == "" {
		return t, nil
	}
	u, ok := c.Unit.(MainPIDer)
	if !ok {
		return t, reason.New(ReasonHealthCheck, "probe_version = \"off\" needs a unit whose main PID proves the new process answers; set unit, or a probe_version naming the version")
	}
	pid, err := u.MainPID(ctx)
	if err != nil && hasCode(err) {
		return t, err // e.g. manager_unreachable: no verdict on the version
	}
	if err != nil {
		return t, reason.New(ReasonHealthCheck, "read the unit's main PID before activation (probe_version = \"off\"): %w", err)
	}
	t.oldPID = pid
	return t, nil
}

// newProcess is nil when the version check is on, or when the unit's main
// process is not the one from before the activation. It is read before the
// probe request: once systemd reports a new main PID after a restart, the old
// process has been stopped, so whatever answers next is not it. An unchanged
// PID is errNotReady (a restart job may end before the PID is reported) until
// the start timeout, then probe_mismatch.
func (c *Confirmer) newProcess(ctx context.Context, t trial) error {
	if !c.VersionCheck.Off() {
		return nil
	}
	pid, err := c.Unit.(MainPIDer).MainPID(ctx) // newTrial checked the type
	if err != nil {
		return mark(reason.New(ReasonHealthCheck, "read the unit's main PID: %w", err), errNotReady)
	}
	if pid == 0 {
		return mark(reason.New(ReasonHealthCheck, "the unit has no main process (probe_version = \"off\" needs one to prove the new version answers)"), errNotReady)
	}
	if pid == t.oldPID {
		return mark(reason.New(ReasonProbeMismatch, "the unit's main process is still PID %d, the one that served before the activation: the old process answers, not version %q (probe_version = \"off\" proves the swap only by a new process)", pid, t.version), errNotReady)
	}
	return nil
}

// readTolerances reads a model's per-field tolerances file (JSON pointer →
// absolute tolerance); name "" means none.
func readTolerances(dir, name string) (map[string]float64, error) {
	if name == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, reason.New(ReasonHealthCheck, "read probe tolerances: %w", err)
	}
	var tols map[string]float64
	if err := json.Unmarshal(data, &tols); err != nil {
		return nil, reason.New(ReasonHealthCheck, "%s must be a JSON object of JSON pointer → tolerance, e.g. {\"/outputs\": 1e-3}: %w", name, err)
	}
	for ptr, tol := range tols {
		if _, err := jsonptr.Parse(ptr); err != nil {
			return nil, reason.New(ReasonHealthCheck, "%s: %w", name, err)
		}
		if tol < 0 || math.IsNaN(tol) {
			return nil, reason.New(ReasonHealthCheck, "%s: the tolerance of %q is %g; use a number ≥ 0", name, ptr, tol)
		}
	}
	return tols, nil
}
