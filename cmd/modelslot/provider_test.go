package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// modelslot fleet and rollout run modelslot-fleet (found next to modelslot)
// with the same arguments: its output and exit code are the command's.
func TestFleetCommandsRunModelslotFleet(t *testing.T) {
	r := runBinary(t, nil, "fleet", "serve", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: modelslot-fleet fleet serve") || r.stderr != "" {
		t.Fatalf("fleet serve --help: want modelslot-fleet's help, exit 0: %v", r)
	}
	// A global flag before the command and the command's own flags after it
	// both reach modelslot-fleet; its exit code 2 (the config) comes back.
	r = runBinary(t, nil, "--config", "/nonexistent/fleet.toml", "fleet", "serve")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "modelslot-fleet: ") || !strings.Contains(r.stderr, "/nonexistent/fleet.toml") {
		t.Fatalf("fleet serve with a missing config: want modelslot-fleet's error naming it, exit 2: %v", r)
	}
	port := testutil.FreePort(t)
	r = runBinary(t, nil, "rollout", "status", "--json", "--controller", "http://127.0.0.1:"+strconv.Itoa(port))
	if r.code != exitError || !strings.Contains(r.stderr, "reach the controller at http://127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("rollout status with no controller there: want exit 1 from modelslot-fleet: %v", r)
	}
}

// Without modelslot-fleet next to modelslot or in $PATH, the fleet commands
// fail with exit 2 and say what to install; with it in $PATH, they run it.
func TestFleetCommandsWithoutModelslotFleet(t *testing.T) {
	dir := t.TempDir()
	alone := filepath.Join(dir, "modelslot")
	copyFile(t, binary, alone)
	empty := t.TempDir()
	for _, args := range [][]string{{"fleet", "serve"}, {"--config", "/etc/x.toml", "rollout", "status"}, {"fleet", "--help"}} {
		r := runAt(t, alone, []string{"PATH=" + empty}, args...)
		if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "modelslot: ") ||
			!strings.Contains(r.stderr, "install the modelslot-fleet package") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v without modelslot-fleet: want one line naming the package to install, exit 2: %v", args, r)
		}
	}
	inPath := t.TempDir()
	copyFile(t, fleetBinary, filepath.Join(inPath, "modelslot-fleet"))
	r := runAt(t, alone, []string{"PATH=" + inPath}, "fleet", "serve", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: modelslot-fleet fleet serve") {
		t.Fatalf("fleet serve --help with modelslot-fleet in $PATH: %v", r)
	}
	// The device's own commands need no modelslot-fleet.
	if r := runAt(t, alone, []string{"PATH=" + empty}, "--help"); r.code != 0 || !strings.Contains(r.stdout, "  fleet      ") {
		t.Fatalf("--help: %v", r)
	}
}

// The device binary links neither the controller (its store, dashboard) nor
// a SQL engine or PostgreSQL driver; modelslot-fleet does (so the check
// reads the right list).
func TestDeviceBinaryLinksNoFleetController(t *testing.T) {
	heavy := []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/chromedp/",
		"github.com/modelslot/modelslot/internal/fleet", "github.com/modelslot/modelslot/internal/simulate"}
	deps := func(pkg string) []string {
		out, err := exec.Command(testutil.GoTool(), "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	linked := func(deps []string, prefix string) string {
		for _, d := range deps {
			if strings.HasPrefix(d, prefix) {
				return d
			}
		}
		return ""
	}
	device := deps("github.com/modelslot/modelslot/cmd/modelslot")
	for _, h := range heavy {
		if d := linked(device, h); d != "" {
			t.Errorf("cmd/modelslot depends on %s: the fleet controller's dependencies belong in cmd/modelslot-fleet", d)
		}
	}
	fleet := deps("github.com/modelslot/modelslot/cmd/modelslot-fleet")
	for _, h := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/modelslot/modelslot/internal/fleet/dashboard"} {
		if linked(fleet, h) == "" {
			t.Errorf("cmd/modelslot-fleet does not depend on %s: is the list of go list -deps read right?", h)
		}
	}
}

// runAt runs the binary at path with exactly args and env added.
func runAt(t *testing.T, path string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return resultOf(cmd, err, out.String(), errb.String(), t)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// The controller started as `modelslot fleet serve` is modelslot-fleet in the
// same process (exec'd, not a child): SIGTERM reaches it and it stops
// cleanly, exit 0, as systemd expects of the unit.
func TestFleetServeThroughModelslotIsTheSameProcess(t *testing.T) {
	f := newFleet(t, 0, "")
	config, url := f.controllerConfig("")
	c := startController(t, config, url)
	c.waitReady(30 * time.Second)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.cmd.Process.Pid))
	if err != nil || filepath.Base(exe) != "modelslot-fleet" {
		t.Fatalf("the process modelslot fleet serve started runs %q (%v), want modelslot-fleet", exe, err)
	}
	testutil.OK(t, c.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("the controller did not stop on SIGTERM:\n%s", c.logText())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, c.logText())
	}
}
