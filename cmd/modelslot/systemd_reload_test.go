package main

import (
	"strings"
	"testing"
	"time"
)

// activation = "reload": the unit is reloaded (ExecReload=, SIGHUP) instead of
// restarted, so the server process stays and swaps its model in. The probe
// must see the new version answer; a version the server refuses to swap in
// (its own probe fails) leaves the old one answering, which the probe catches
// as probe_mismatch, and the revert reloads the old version.
func TestSystemdReloadActivation(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{activation: "reload", startTimeout: 3 * time.Second})
	d.install(0, "v1") // the unit is not running yet: the first activation starts it
	d.agree("v1")
	pid := d.m.Show(t, demoUnit, "MainPID")
	d.install(0, "v2")
	d.agree("v2")
	if got := d.m.Show(t, demoUnit, "MainPID"); got != pid {
		t.Fatalf("MainPID %s → %s: a reload must keep the process", pid, got)
	}
	start := time.Now()
	d.install(exitRolledBack, "v3-wrong")
	t.Logf("v3-wrong refused by the server and reverted in %s", time.Since(start).Round(time.Millisecond))
	st := d.agree("v2")
	failedWith(t, st, "v3-wrong", "probe_mismatch")
	if !strings.Contains(st.LastFailure.Reason, `the answer came from version "v2"`) {
		t.Errorf("the reason should say the old version kept answering: %q", st.LastFailure.Reason)
	}
	if got := d.m.Show(t, demoUnit, "MainPID"); got != pid {
		t.Fatalf("MainPID %s → %s: neither the reload nor the revert should restart", pid, got)
	}
}
