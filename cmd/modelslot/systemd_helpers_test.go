package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/health"
	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// The unit names of packaging/systemd/, which the tests install with their
// paths substituted, so the shipped files are the ones proven here.
const (
	demoUnit     = "demo-inference.service"
	demoSocket   = "demo-inference.socket"
	rollbackUnit = "modelslot-rollback@" + demoUnit + ".service"
)

// modelDirs maps the version labels the tests install to testdata/models/.
var modelDirs = map[string]string{
	"v1": "v1", "v2": "v2", "v3-crash": "crash", "v3-hang": "hang",
	"v3-slow": "slow", "v3-fat": "fat", "v3-wrong": "wrong",
}

func modelDir(version string) string {
	return filepath.Join("..", "..", "testdata", "models", modelDirs[version])
}

// demoBinary builds modelslot-demo once per test process.
func demoBinary(t testing.TB) string {
	t.Helper()
	return testutil.Binary(t, "github.com/modelslot/modelslot/cmd/modelslot-demo")
}

// sdOptions shape one device under a real manager.
type sdOptions struct {
	activation   string        // restart (default) or reload
	startTimeout time.Duration // start_timeout; default 15s
	window       time.Duration // confirm_window
	watchdog     time.Duration // WatchdogSec of the inference unit
	maxAttempts  int
	checks       []string
	health       string // extra [model.health] lines
}

// sdDevice is a device whose inference unit (the demo server) runs under a
// private systemd user manager, with the unit files of packaging/systemd/.
type sdDevice struct {
	*env
	m    *systemdtest.Manager
	port int
	log  string // output of the inference and rollback units
}

func newSDDevice(t *testing.T, o sdOptions) *sdDevice {
	t.Helper()
	m := systemdtest.Start(t)
	d := &sdDevice{env: newEnv(t), m: m, port: testutil.FreePort(t), log: filepath.Join(t.TempDir(), "units.log")}
	d.extraConf = d.modelConf(o)
	d.writeConfig()
	d.installUnits(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := m.Systemctl("status", "--no-pager", demoUnit, demoSocket, rollbackUnit)
			t.Logf("unit output:\n%s\n%s", readFile(d.log), out)
		}
	})
	return d
}

func (d *sdDevice) modelConf(o sdOptions) string {
	activation, window := o.activation, o.window
	if activation == "" {
		activation = "restart"
	}
	if window == 0 {
		window = time.Second
	}
	if o.maxAttempts == 0 {
		o.maxAttempts = 3
	}
	if o.startTimeout == 0 {
		o.startTimeout = 15 * time.Second
	}
	checks, _ := json.Marshal(o.checks)
	if o.checks == nil {
		checks = []byte("[]")
	}
	return fmt.Sprintf(`unit = %q
activation = %q
  [model.health]
  start_timeout  = %q
  confirm_window = %q
  probe_url      = "%s"
  max_latency    = "500ms"
  max_memory     = "150MiB"
  max_attempts   = %d
  checks         = %s
%s
[systemd]
scope = "user"
bus   = %q
`, demoUnit, activation, o.startTimeout.String(), window.String(), d.probeURL(), o.maxAttempts, checks, o.health, d.m.BusAddress())
}

func (d *sdDevice) probeURL() string { return fmt.Sprintf("http://127.0.0.1:%d/v1/infer", d.port) }

// installUnits writes the packaged units with this device's paths and starts
// the socket; the server itself starts with the first activation.
func (d *sdDevice) installUnits(t *testing.T, o sdOptions) {
	t.Helper()
	watchdog := o.watchdog
	if watchdog == 0 {
		watchdog = time.Second
	}
	subst := strings.NewReplacer(
		"/usr/local/bin/modelslot-demo", demoBinary(t),
		"/var/lib/modelslot/demo/current", d.link,
		"/usr/bin/modelslot ", binary+" ",
		"/etc/modelslot/modelslot.toml", d.config,
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", d.port),
		"WatchdogSec=2", fmt.Sprintf("WatchdogSec=%dms", watchdog.Milliseconds()),
	)
	for _, name := range []string{demoUnit, demoSocket, "modelslot-rollback@.service"} {
		d.writeUnitFile(t, name, subst.Replace(readFile(filepath.Join("..", "..", "packaging", "systemd", name))))
	}
	// Test-only: unit output into one file (there is no journal); the demo's
	// link lives under /tmp, so it must see the real /tmp; ProtectHome=,
	// ProtectKernelTunables= and ProtectKernelLogs= fail with 226/NAMESPACE
	// under the private user manager in a container (seen), the rest of the
	// hardening applies. The rollback unit writes this device's state root and
	// link directory instead of StateDirectory= (a user manager would put that
	// under $HOME).
	out := fmt.Sprintf("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n", d.log, d.log)
	d.writeUnitFile(t, demoUnit+".d/test.conf", out+"PrivateTmp=no\nProtectHome=no\nProtectKernelTunables=no\n")
	d.writeUnitFile(t, "modelslot-rollback@.service.d/test.conf", out+"Environment=MODELSLOT_LOG_LEVEL=info\n"+d.unitPaths())
	d.m.DaemonReload(t)
	d.systemctl(t, "start", demoSocket)
}

// unitPaths is the drop-in text that lets a packaged modelslot unit write this
// device's state root and link directory under a user manager in a container.
func (d *sdDevice) unitPaths() string {
	return "StateDirectory=\nReadWritePaths=" + d.root + " " + filepath.Dir(d.link) +
		"\nPrivateTmp=no\nProtectHome=no\nProtectKernelTunables=no\nProtectKernelLogs=no\n"
}

func (d *sdDevice) writeUnitFile(t *testing.T, name, text string) {
	t.Helper()
	p := filepath.Join(d.m.UnitDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d *sdDevice) systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.m.Systemctl(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// install installs version from testdata/models and wants exit code want.
func (d *sdDevice) install(want int, version string) result {
	d.t.Helper()
	return d.must(want, "install", "--insecure", "--label", version, modelDir(version))
}

// agree asserts that the link, state.json, `status --json`, the unit and the
// process answering on the port all say version is serving, with no trial
// left, and that the served version answers its own probe.
func (d *sdDevice) agree(version string) modelStatus {
	d.t.Helper()
	if got := d.checkInvariants(); got != version {
		d.t.Fatalf("link and state serve %q, want %q", got, version)
	}
	st := d.status()
	if st.Trial != nil {
		d.t.Fatalf("a trial is still pending: %+v", *st.Trial)
	}
	if st.Restore != nil {
		d.t.Fatalf("a restore is still pending: %+v", *st.Restore)
	}
	if got := d.m.Show(d.t, demoUnit, "ActiveState"); got != "active" {
		d.t.Fatalf("%s is %s, want active", demoUnit, got)
	}
	if got := d.served(); got != version {
		d.t.Fatalf("the server answers with version %q, want %q", got, version)
	}
	d.probe(version)
	return st
}

// served asks the running server which version answers.
func (d *sdDevice) served() string {
	d.t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", d.port))
	if err != nil {
		d.t.Fatalf("ask the server its version: %v", err)
	}
	defer resp.Body.Close()
	var h struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		d.t.Fatalf("healthz: %v", err)
	}
	return h.Version
}

// probe sends version's probe input and checks the answer against its expected
// output, as the health contract does.
func (d *sdDevice) probe(version string) {
	d.t.Helper()
	dir := modelDir(version)
	p := health.Probe{URL: d.probeURL(), Input: []byte(readFile(filepath.Join(dir, "probe", "input.json"))),
		Expected: []byte(readFile(filepath.Join(dir, "probe", "expected.json"))), Tolerance: 1e-4,
		Version: version, Samples: 1, Timeout: 5 * time.Second}
	if err := p.Run(context.Background()); err != nil {
		d.t.Fatalf("the served version %s does not answer its probe: %v", version, err)
	}
}

// failedWith asserts that version's slot is bad with reason code and that
// last_failure says so.
func failedWith(t *testing.T, st modelStatus, version, code string) {
	t.Helper()
	for _, s := range st.Slots {
		if s.Version == version {
			if s.Status != "bad" || string(s.Code) != code || !strings.HasPrefix(s.Reason, code+":") {
				t.Fatalf("slot of %s: status %s code %q reason %q, want bad with %s", version, s.Status, s.Code, s.Reason, code)
			}
			if st.LastFailure == nil || string(st.LastFailure.Code) != code || !strings.HasPrefix(st.LastFailure.Reason, code+":") {
				t.Fatalf("last_failure %+v, want reason %s", st.LastFailure, code)
			}
			return
		}
	}
	t.Fatalf("no slot holds %s: %+v", version, st.Slots)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// started is a modelslot process running in the background.
type started struct {
	cmd  *exec.Cmd
	done chan result
}

func (d *sdDevice) start(extraEnv []string, args ...string) *started {
	d.t.Helper()
	cmd := d.command(extraEnv, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	s := &started{cmd: cmd, done: make(chan result, 1)}
	go func() {
		err := cmd.Wait()
		s.done <- resultOf(cmd, err, out.String(), errb.String(), d.t)
	}()
	d.t.Cleanup(func() { cmd.Process.Kill() })
	return s
}

func (s *started) wait(t *testing.T) result {
	t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("modelslot %v did not end within 60s", s.cmd.Args)
		return result{}
	}
}

// inWindow waits until the unit serves version under a trial: modelslot is in
// its confirmation window.
func (d *sdDevice) inWindow(version string) {
	d.t.Helper()
	testutil.WaitFor(d.t, 20*time.Second, version+" serving under trial", func() bool {
		st := d.view().State()
		return st.Trial != nil && st.Trial.Version == version && d.servedNow() == version
	})
}

// servedNow is served without failing: "" when nothing answers.
func (d *sdDevice) servedNow() string {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", d.port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct{ Version string }
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Version
}
