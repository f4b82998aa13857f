package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelslot/modelslot/slots"
)

// modelName and the state directory below the mount are the guest's
// (test/powercut/init writes the same config).
const modelName = "demo"

func storeConfig(mnt string) slots.Config {
	return slots.Config{Dir: filepath.Join(mnt, "ms", modelName), Model: modelName}
}

// checkRaw looks at the disk as the power cut left it, before any modelslot
// runs: this is what an inference server started at boot would read. state.json
// must parse, the link must point at the active slot (or at the target of the
// switch in progress), and that slot must verify against its manifest.
func checkRaw(ctx context.Context, mnt string, log *serialLog) error {
	v, err := slots.OpenView(storeConfig(mnt))
	if err != nil {
		return failf(kindState, "before recovery: %w", err)
	}
	st := v.State()
	linked, err := v.LinkedSlot()
	if err != nil {
		return failf(kindLink, "before recovery: %w", err)
	}
	if linked == "" {
		return failf(kindLink, "before recovery: the link is missing (v1 was installed before the first boot)")
	}
	if linked != st.Active && (st.Switch == nil || st.Switch.To != linked) {
		return failf(kindLink, "before recovery: the link points at slot %s, state.json says active %q and switch %+v", linked, st.Active, st.Switch)
	}
	m, err := v.VerifySlot(ctx, linked, 2)
	if err != nil {
		return failf(kindTorn, "before recovery: the served slot is not complete: %w", err)
	}
	if served := outcomeOf(st, linked, m.Version); !log.permits(served) {
		return failf(kindLost, "before recovery: the link serves %s, but the console acknowledged %s (step %d)%s",
			served, log.Acked, log.AckedN, inFlightText(log))
	}
	return nil
}

// checkRecovered runs the real modelslot on the mounted image, as the next boot
// would, and checks what it recovered to: a clean state (no switch, no trial, no
// install half done) that keeps every acknowledged step, and a slot that verifies.
func checkRecovered(ctx context.Context, bin, mnt string, log *serialLog) error {
	cfg, err := writeConfig(mnt)
	if err != nil {
		return err
	}
	defer os.Remove(cfg)
	if _, err := exec.CommandContext(ctx, bin, "--config", cfg, "recover").Output(); err != nil {
		return failf(kindRecovery, "modelslot recover failed: %w: %s", err, stderrOf(err))
	}
	out, err := exec.CommandContext(ctx, bin, "--config", cfg, "status", "--json").Output()
	if err != nil {
		return failf(kindRecovery, "modelslot status failed: %w: %s", err, stderrOf(err))
	}
	var status struct {
		Models []struct {
			ActiveSlot    *string         `json:"active_slot"`
			ActiveVersion *string         `json:"active_version"`
			Trial         json.RawMessage `json:"trial"`
		} `json:"models"`
	}
	if err := json.Unmarshal(out, &status); err != nil || len(status.Models) != 1 || status.Models[0].ActiveSlot == nil {
		return failf(kindRecovery, "modelslot status --json: unexpected output (%v): %s", err, out)
	}
	ms := status.Models[0]
	if t := strings.TrimSpace(string(ms.Trial)); t != "null" {
		return failf(kindRecovery, "after recovery: a trial is still open: %s", t)
	}
	if out, err := exec.CommandContext(ctx, bin, "--config", cfg, "verify").CombinedOutput(); err != nil {
		return failf(kindRecovery, "modelslot verify after recovery: %w: %s", err, out)
	}
	got, err := checkClean(mnt, *ms.ActiveSlot)
	if err != nil {
		return err
	}
	if got.Version != *ms.ActiveVersion {
		return failf(kindRecovery, "after recovery: status says %s, state.json %s", *ms.ActiveVersion, got)
	}
	if !log.permits(got) {
		return failf(kindLost, "after recovery: active is %s, but the console acknowledged %s (step %d)%s",
			got, log.Acked, log.AckedN, inFlightText(log))
	}
	return nil
}

// checkClean reads the recovered state directly: the link and state.json agree
// with status and nothing is left half done. It returns the active outcome.
func checkClean(mnt, active string) (outcome, error) {
	v, err := slots.OpenView(storeConfig(mnt))
	if err != nil {
		return outcome{}, failf(kindRecovery, "after recovery: %w", err)
	}
	st := v.State()
	linked, err := v.LinkedSlot()
	if err != nil {
		return outcome{}, failf(kindRecovery, "after recovery: %w", err)
	}
	got := outcomeOf(st, st.Active, "")
	switch {
	case linked != active || st.Active != active:
		return got, failf(kindRecovery, "after recovery: link at %q, state.json active %q, status said %q", linked, st.Active, active)
	case st.Switch != nil:
		return got, failf(kindRecovery, "after recovery: a switch is still pending: %+v", *st.Switch)
	case st.Slots[slots.A].Status == slots.Installing || st.Slots[slots.B].Status == slots.Installing:
		return got, failf(kindRecovery, "after recovery: an install is still marked in progress")
	}
	return got, nil
}

// outcomeOf describes slot as state.json has it; version, when given, is the
// one its manifest says.
func outcomeOf(st *slots.State, slot, version string) outcome {
	o := outcome{Slot: slot, Version: version, Installed: "none"}
	if s := st.Slots[slot]; s != nil {
		if o.Version == "" {
			o.Version = s.Version
		}
		if !s.InstalledAt.IsZero() {
			o.Installed = s.InstalledAt.UTC().Format(time.RFC3339Nano)
		}
	}
	return o
}

// writeConfig points a host config at the mounted image. The link is left at
// its default, inside the state directory, where modelslot keeps it relative
// (slots/a), so it resolves under the mount point.
func writeConfig(mnt string) (string, error) {
	f, err := os.CreateTemp("", "powercut-*.toml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "device_id = \"powercut-host\"\nstate_root = %q\n\n[[model]]\nname = %q\n", filepath.Join(mnt, "ms"), modelName)
	return f.Name(), err
}

func inFlightText(log *serialLog) string {
	if log.InFlight == nil {
		return " and nothing was in flight"
	}
	return " and was running the step to " + log.InFlight.String()
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
