package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// No modelslot process runs: a trial was left pending (modelslot killed after
// the swap, as a power cut would), and the device restarted the unit on the
// new version, which crash-loops until systemd gives up (StartLimitBurst).
// OnFailure=modelslot-rollback@%n.service runs `modelslot rollback --if-trial`,
// which puts the link back and brings the old version up again.
func TestSystemdOnFailureRevertsWithNoModelslotRunning(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{})
	d.install(0, "v1")
	if fired, r := d.crashAt(trialPoint, "install", "--insecure", "--label", "v3-crash", modelDir("v3-crash")); !fired {
		t.Fatalf("crash point %s did not fire: %v", trialPoint, r)
	}
	if n := modelslotsOf(d.config); len(n) != 0 {
		t.Fatalf("modelslot processes still running: %v", n)
	}
	start := time.Now()
	// As after a reboot: the unit starts from the link, which names v3-crash.
	d.m.Systemctl("restart", demoUnit) // fails: the new version crashes at start
	testutil.WaitFor(t, 60*time.Second, "the rollback unit to revert the trial", func() bool {
		st := d.view().State()
		return st.Trial == nil && st.Restore == nil && d.servedNow() == "v1"
	})
	testutil.WaitFor(t, 10*time.Second, "the rollback unit to finish", func() bool {
		return d.m.Show(t, rollbackUnit, "ActiveState") != "activating"
	})
	t.Logf("from the restart to v1 answering again without modelslot running: %s", time.Since(start).Round(time.Millisecond))
	if d.m.Show(t, rollbackUnit, "ExecMainStartTimestampMonotonic") == "0" {
		t.Fatalf("%s never ran: who reverted?", rollbackUnit)
	}
	if res, code := d.m.Show(t, rollbackUnit, "Result"), d.m.Show(t, rollbackUnit, "ExecMainStatus"); res != "success" || code != "0" {
		t.Fatalf("%s: Result=%s ExecMainStatus=%s", rollbackUnit, res, code)
	}
	failedWith(t, d.agree("v1"), "v3-crash", "crash_loop") // from MONITOR_SERVICE_RESULT, not "manual"
}

// modelslotsOf lists running processes of the modelslot binary under test
// that act on config (other tests run their own in parallel).
func modelslotsOf(config string) []string {
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, e := range dirs {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && exe == binary && strings.Contains(readFile(filepath.Join("/proc", e.Name(), "cmdline")), config) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// The packaged units pass `systemd-analyze verify` with their paths replaced
// by real files.
func TestSystemdPackagedUnitsVerify(t *testing.T) {
	testutil.NeedTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	subst := strings.NewReplacer("/usr/local/bin/modelslot-demo", demoBinary(t), "/usr/bin/modelslot ", binary+" ")
	var units []string
	for _, name := range []string{demoUnit, demoSocket, "modelslot-rollback@.service", "modelslot-agent.service", "modelslot-recover.service"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(subst.Replace(readFile(filepath.Join("..", "..", "packaging", "systemd", name)))), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	units = append(units, filepath.Join(dir, "modelslot-rollback@demo-inference.service.service"))
	os.Symlink("modelslot-rollback@.service", units[len(units)-1])
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The old version does not come back either (here: every start of the unit
// fails from now on): modelslot reverts the link, says so plainly in status,
// and stops; no swinging back and forth, also not on the next start.
func TestSystemdOldVersionFailingTooIsReportedAndStops(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{startTimeout: 3 * time.Second})
	d.install(0, "v1")
	d.writeUnitFile(t, demoUnit+".d/broken.conf", "[Service]\nExecStartPre=/bin/false\n")
	d.m.DaemonReload(t)
	r := d.install(exitRolledBack, "v2")
	if !strings.Contains(r.stderr, "did not come back healthy") {
		t.Fatalf("the error should say the old version failed too: %s", r.stderr)
	}
	if got := d.checkInvariants(); got != "v1" {
		t.Fatalf("the link must be back on v1, serves %q", got)
	}
	st := d.status()
	if st.Trial != nil || st.LastFailure == nil || st.LastFailure.RestoreFailed == "" {
		t.Fatalf("status must show the failed restore and no trial: %+v", st)
	}
	failedWith(t, st, "v2", "crash_loop")
	human := d.must(0, "status").stdout
	if !strings.Contains(human, "ATTENTION") {
		t.Fatalf("status must say it plainly:\n%s", human)
	}
	if again := d.status(); *again.ActiveVersion != "v1" || again.Trial != nil {
		t.Fatalf("the next start changed something: %+v", again)
	}
}

// shippedUnits are the units the .deb installs (the demo units are examples
// in its docs).
var shippedUnits = []string{"modelslot-agent.service", "modelslot-rollback@.service"}

// Every shipped unit rates at most 4.5 in `systemd-analyze security` (the
// rollback unit was 9.6 UNSAFE before it was hardened like the agent).
func TestSystemdShippedUnitsAreHardened(t *testing.T) {
	testutil.NeedTool(t, "systemd-analyze", "systemd")
	for _, name := range shippedUnits {
		cmd := exec.Command("systemd-analyze", "security", "--offline=true", "--threshold=45", "--no-pager", name)
		cmd.Dir = filepath.Join("..", "..", "packaging", "systemd")
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil {
			t.Errorf("%s: exposure above 4.5 (%v): %s", name, err, lines[len(lines)-1])
			continue
		}
		t.Logf("%s", lines[len(lines)-1])
	}
}
