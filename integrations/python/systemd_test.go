package python

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// The example server in its example unit under a real (private) systemd
// manager, updated by the real modelslot: good versions commit, a version
// whose model file is broken is reverted and the good one serves again; with
// activation "restart" (a new process) and "reload" (SIGHUP to the same one).
func TestExampleServerUpdatedByModelslot(t *testing.T) {
	systemdtest.Need(t)
	python := testutil.Python(t)
	bin := buildModelslot(t)
	// How each activation sees the broken version: the new process exits
	// (restart), or the old one goes on answering after its reload failed.
	for activation, reason := range map[string]string{"restart": "crash_loop:", "reload": "probe_mismatch:"} {
		t.Run(activation, func(t *testing.T) {
			d := newDevice(t, python, bin, activation)
			d.install(t, 0, "v1", 1)
			d.served(t, "v1")
			d.install(t, 0, "v2", 2)
			d.served(t, "v2")
			d.install(t, 4, "v3-broken", 0) // exit 4: failed and rolled back
			d.served(t, "v2")
			var st struct {
				Models []struct {
					ActiveVersion *string                           `json:"active_version"`
					LastFailure   *struct{ Version, Reason string } `json:"last_failure"`
				}
			}
			if err := json.Unmarshal([]byte(d.modelslot(t, 0, "status", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			m := st.Models[0]
			if *m.ActiveVersion != "v2" || m.LastFailure == nil || m.LastFailure.Version != "v3-broken" ||
				!strings.HasPrefix(m.LastFailure.Reason, reason) {
				t.Fatalf("status after the broken version: active %v, last failure %+v", *m.ActiveVersion, m.LastFailure)
			}
			t.Logf("v3-broken reverted: %s", m.LastFailure.Reason)
		})
	}
}

type device struct {
	m      *systemdtest.Manager
	bin    string
	config string
	dir    string
	port   int
}

func newDevice(t *testing.T, python, bin, activation string) *device {
	return newServerDevice(t, python, bin, activation, "example_server.py", "5s")
}

// newServerDevice runs script (example_server.py, torch_server.py) in the
// example unit, with start_timeout.
func newServerDevice(t *testing.T, python, bin, activation, script, startTimeout string) *device {
	m := systemdtest.Start(t)
	d := &device{m: m, bin: bin, dir: t.TempDir(), port: testutil.FreePort(t)}
	link := filepath.Join(d.dir, "srv", "example")
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	d.config = filepath.Join(d.dir, "modelslot.toml")
	must(t, os.WriteFile(d.config, []byte(fmt.Sprintf(`device_id = "test"
state_root = %q
[systemd]
scope = "user"
bus   = %q
[[model]]
name       = "example"
link       = %q
unit       = "example-inference.service"
activation = %q
  [model.health]
  start_timeout  = %q
  confirm_window = "1s"
  probe_url      = "http://127.0.0.1:%d/v1/infer"
`, filepath.Join(d.dir, "state"), m.BusAddress(), link, activation, startTimeout, d.port)), 0o644))
	script, _ = filepath.Abs(script)
	subst := strings.NewReplacer(
		"/usr/bin/python3", python,
		"/usr/share/doc/modelslot/examples/python/example_server.py", script,
		"/var/lib/modelslot/example/current", link,
		"127.0.0.1:9000", fmt.Sprintf("127.0.0.1:%d", d.port))
	for _, name := range []string{"example-inference.service", "example-inference.socket"} {
		b, err := os.ReadFile(name)
		must(t, err)
		m.WriteUnit(t, name, subst.Replace(string(b)))
	}
	// Under a private user manager in a container ProtectHome= and
	// ProtectKernelTunables= fail with 226/NAMESPACE (as for the demo unit);
	// the test's files live under /tmp. No rollback unit here: OnFailure=
	// names one that does not exist, which systemd only logs.
	log := filepath.Join(d.dir, "server.log")
	m.WriteUnit(t, "example-inference.service.d/test.conf", "[Service]\nPrivateTmp=no\nProtectHome=no\nProtectKernelTunables=no\n"+
		"StandardOutput=append:"+log+"\nStandardError=append:"+log+"\n")
	m.DaemonReload(t)
	if out, err := m.Systemctl("start", "example-inference.socket"); err != nil {
		t.Fatalf("start the socket: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("server log:\n%s", b)
		}
	})
	return d
}

// install installs a model directory whose linear weights are k times the
// identity (k = 0: a model.json the server refuses), wanting exit code want.
func (d *device) install(t *testing.T, want int, version string, k int) {
	t.Helper()
	dir := filepath.Join(d.dir, "models", version)
	must(t, os.MkdirAll(filepath.Join(dir, "probe"), 0o755))
	model := fmt.Sprintf(`{"weights": [[%d, 0], [0, %d]]}`, k, k)
	if k == 0 {
		model = `{"weights": [[1, "not a number"]]}`
	}
	must(t, os.WriteFile(filepath.Join(dir, "model.json"), []byte(model), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "probe", "input.json"), []byte(`{"inputs": [[1, 2]]}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "probe", "expected.json"), []byte(fmt.Sprintf(`{"outputs": [[%d, %d]]}`, k, 2*k)), 0o644))
	d.modelslot(t, want, "install", "--insecure", "--label", version, dir)
}

func (d *device) modelslot(t *testing.T, want int, args ...string) string {
	t.Helper()
	cmd := exec.Command(d.bin, append([]string{"--config", d.config}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("modelslot %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// served asks the running server which version it answers with.
func (d *device) served(t *testing.T, want string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", d.port))
	if err != nil {
		t.Fatalf("ask the server its version: %v", err)
	}
	defer resp.Body.Close()
	var h struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Version != want {
		t.Fatalf("the server answers with version %q (%v), want %q", h.Version, err, want)
	}
}

func buildModelslot(t *testing.T) string {
	return testutil.Binary(t, "github.com/modelslot/modelslot/cmd/modelslot")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The example units pass systemd-analyze verify with their paths replaced by
// real files.
func TestExampleUnitsVerify(t *testing.T) {
	testutil.NeedTool(t, "systemd-analyze", "systemd")
	python := testutil.Python(t)
	script, _ := filepath.Abs("example_server.py")
	dir := t.TempDir()
	subst := strings.NewReplacer("/usr/bin/python3", python,
		"/usr/share/doc/modelslot/examples/python/example_server.py", script)
	var units []string
	for _, name := range []string{"example-inference.service", "example-inference.socket"} {
		b, err := os.ReadFile(name)
		must(t, err)
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(subst.Replace(string(b))), 0o644))
		units = append(units, p)
	}
	// OnFailure= names the rollback template; give verify one to find.
	rollback, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "modelslot-rollback@.service"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "modelslot-rollback@.service"), bytes.ReplaceAll(rollback, []byte("/usr/bin/modelslot "), []byte("/bin/true ")), 0o644))
	cmd := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
