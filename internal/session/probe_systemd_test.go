package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/health"
	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/systemd"
	"github.com/modelslot/modelslot/verify"
)

// A server that names no version anywhere in its answer (testdata/
// noversion_server.py), under a real private systemd manager, with
// probe_version = "off": versions commit when a restart gives the unit a new
// main process, and the probe fails while the old process still answers
// (the unit's main PID unchanged: a reload, which the server ignores), even
// though that process's output matches.
func TestProbeVersionOffUnderSystemd(t *testing.T) {
	python := testutil.Python(t)
	m := systemdtest.Start(t)
	dir, port := t.TempDir(), testutil.FreePort(t)
	link := filepath.Join(dir, "srv", "plain")
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	script, _ := filepath.Abs(filepath.Join("testdata", "noversion_server.py"))
	m.WriteUnit(t, "plain.service", fmt.Sprintf(`[Service]
Type=notify
ExecStart=%s -B %s --link %s --port %d
ExecReload=/bin/kill -HUP $MAINPID
`, python, script, link, port))
	cfg, err := config.Parse([]byte(fmt.Sprintf(`state_root = %q
[systemd]
scope = "user"
bus   = %q
[[model]]
name = "plain"
link = %q
unit = "plain.service"
  [model.health]
  start_timeout  = "5s"
  confirm_window = "300ms"
  probe_url      = "http://127.0.0.1:%d/"
  probe_version  = "off"
`, filepath.Join(dir, "state"), m.BusAddress(), link, port)))
	must(t, err)
	ctx := context.Background()
	d, err := Open(ctx, cfg, &cfg.Models[0], "test")
	must(t, err)
	defer d.Close()

	install := func(version string, scale int) error {
		src := filepath.Join(dir, "models", version)
		writeModel(t, src, scale)
		man, err := verify.Scan(ctx, src, "plain", version, 1)
		must(t, err)
		_, err = d.Updater.Install(ctx, man, update.DirSource{Dir: src})
		return err
	}
	must(t, install("v1", 2))
	must(t, install("v2", 3))
	if got := ask(t, port); !bytes.Equal(got, []byte(`{"outputs":[3,6]}`)) {
		t.Fatalf("after v2 the server answers %s, want v2's outputs and no version", got)
	}
	if st := d.Store.State(); st.Slots[st.Active].Version != "v2" || st.LastFailure != nil {
		t.Fatalf("state after v2: active %s, last failure %+v", st.Slots[st.Active].Version, st.LastFailure)
	}

	// The old process answering: a reload keeps the main PID (config refuses
	// reload with "off" for this reason; the test sets it behind its back).
	// The answer is v2's, correct for the slot's probe, and must still fail.
	pid := m.Show(t, "plain.service", "MainPID")
	c := d.Updater.Confirm.(*health.Confirmer)
	restart := c.Unit
	reload, err := systemd.NewUnit(systemd.Settings{Scope: d.Config.Systemd.Scope, Bus: d.Config.Systemd.Bus}, "plain.service", "reload", systemd.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer reload.Close()
	c.Unit = reload
	st := d.Store.State()
	err = d.Updater.Confirm.Confirm(ctx, st.Active, "v3")
	want := "probe_mismatch: the unit's main process is still PID " + pid + ", the one that served before the activation"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("with the old process answering: Confirm = %v, want %q…", err, want)
	}
	if after := m.Show(t, "plain.service", "MainPID"); after != pid {
		t.Fatalf("MainPID changed %s → %s: the reload restarted the server, the test shows nothing", pid, after)
	}
	c.Unit = restart // the same confirmation with a restart passes
	if err := d.Updater.Confirm.Confirm(ctx, st.Active, "v3"); err != nil {
		t.Fatalf("after a restart: Confirm = %v, want a pass", err)
	}
}

// writeModel writes a model directory for noversion_server.py: outputs are
// scale × inputs.
func writeModel(t *testing.T, dir string, scale int) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "probe"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "model.json"), []byte(fmt.Sprintf(`{"scale": %d}`, scale)), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "probe", "input.json"), []byte(`{"inputs": [1, 2]}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "probe", "expected.json"), []byte(fmt.Sprintf(`{"outputs": [%d, %d]}`, scale, 2*scale)), 0o644))
}

// ask POSTs the probe input and returns the answer's body.
func ask(t *testing.T, port int) []byte {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/", port), "application/json", strings.NewReader(`{"inputs": [1, 2]}`))
	must(t, err)
	defer resp.Body.Close()
	var v any
	must(t, json.NewDecoder(resp.Body).Decode(&v))
	b, _ := json.Marshal(v)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
