package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
)

// binary is the modelslot command built once for the tests that run it as a real
// child process (crash tests must be able to SIGKILL it). fleetBinary,
// modelslot-fleet, is built into the same directory, where modelslot finds it
// for the fleet and rollout commands.
var binary, fleetBinary string

func TestMain(m *testing.M) {
	var err error
	if binary, err = testutil.BuildBinary("github.com/modelslot/modelslot/cmd/modelslot"); err == nil {
		fleetBinary, err = testutil.BuildBinary("github.com/modelslot/modelslot/cmd/modelslot-fleet")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if filepath.Dir(binary) != filepath.Dir(fleetBinary) {
		fmt.Fprintf(os.Stderr, "modelslot (%s) and modelslot-fleet (%s) must be built side by side\n", binary, fleetBinary)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// The exit codes the tests expect (internal/cli's table).
const (
	exitError      = cli.ExitError
	exitUsage      = cli.ExitUsage
	exitRejected   = cli.ExitRejected
	exitRolledBack = cli.ExitRolledBack
	exitBusy       = cli.ExitBusy
	exitSignalBase = cli.ExitSignalBase
)

// env is one device: a state root, a link directory and a config file.
type env struct {
	t         *testing.T
	root      string // state_root
	link      string
	config    string
	extraConf string // appended to the [[model]] table
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	return newEnvAt(t, filepath.Join(base, "state"), filepath.Join(base, "srv", "demo"))
}

func newEnvAt(t *testing.T, root, link string) *env {
	t.Helper()
	e := &env{t: t, root: root, link: link, config: filepath.Join(t.TempDir(), "modelslot.toml")}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil && !errors.Is(err, os.ErrPermission) {
		t.Fatal(err)
	}
	e.writeConfig()
	return e
}

func (e *env) writeConfig() {
	conf := fmt.Sprintf("device_id = \"test-device\"\nstate_root = %q\n\n[[model]]\nname = \"demo\"\nlink = %q\n%s",
		e.root, e.link, e.extraConf)
	if err := os.WriteFile(e.config, []byte(conf), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// result of one run of the binary.
type result struct {
	code   int
	signal syscall.Signal // set when the process was killed
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d signal %v\nstdout: %s\nstderr: %s", r.code, r.signal, r.stdout, r.stderr)
}

// run runs modelslot with args and extra environment and waits for it.
func (e *env) run(extraEnv []string, args ...string) result {
	e.t.Helper()
	cmd := e.command(extraEnv, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return resultOf(cmd, err, out.String(), errb.String(), e.t)
}

func (e *env) command(extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"--config", e.config}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	return cmd
}

func resultOf(cmd *exec.Cmd, err error, stdout, stderr string, t *testing.T) result {
	r := result{stdout: stdout, stderr: stderr}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		r.code = ws.ExitStatus()
		if ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return r
}

// must runs modelslot and fails the test unless it exits with want.
func (e *env) must(want int, args ...string) result {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != want || r.signal != 0 {
		e.t.Fatalf("modelslot %s: want exit %d, got %v", strings.Join(args, " "), want, r)
	}
	return r
}

// crashAt runs modelslot with crash point name armed and reports whether the
// point fired (the process died of SIGKILL having announced that point).
func (e *env) crashAt(name string, args ...string) (fired bool, r result) {
	e.t.Helper()
	r = e.run([]string{crashpoint.EnvVar + "=" + name}, args...)
	fired = r.signal == syscall.SIGKILL && strings.Contains(r.stderr, "crashpoint "+name+":")
	return fired, r
}

// status runs `status --json` and decodes the one model in it.
func (e *env) status() modelStatus {
	e.t.Helper()
	r := e.must(0, "status", "--json")
	var s struct{ Models []modelStatus }
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Models) != 1 {
		e.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return s.Models[0]
}

// store opens a read-only view of the state, as a second process would.
func (e *env) view() *slots.Store {
	e.t.Helper()
	v, err := slots.OpenView(slots.Config{Dir: filepath.Join(e.root, "demo"), Model: "demo", Link: e.link})
	if err != nil {
		e.t.Fatalf("state.json must always parse: %v", err)
	}
	return v
}

// makeModel writes a model directory with files of the given sizes, each filled
// with random bytes, and returns its path.
func makeModel(t *testing.T, sizes ...int) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range sizes {
		name := filepath.Join(dir, fmt.Sprintf("layer%02d", i/4), fmt.Sprintf("w%02d.bin", i))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		rand.Read(b)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"arch":"mlp"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitStopped waits until pid is stopped by SIGSTOP (state T in /proc).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			if len(fields) > 0 && fields[0] == "T" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop at its crash point", pid)
}

func crashpointEnv(value string) string { return crashpoint.EnvVar + "=" + value }
