package systemdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// SystemdBinary is the manager binary the harness runs.
const SystemdBinary = "/lib/systemd/systemd"

// Timeouts of the harness. A manager is ready 60–180 ms after launch on the
// project's machines; the margins cover a loaded CI runner.
const (
	readyTimeout = 15 * time.Second
	exitTimeout  = 5 * time.Second
	termTimeout  = 3 * time.Second
)

// launchScript runs inside the new mount namespace (Go made it private before exec):
// join the manager's cgroups ("$@"), hide the host's /run/systemd behind a tmpfs,
// create the directory whose presence means "booted with systemd", and become the
// manager, so the PID we hold is the manager's.
const launchScript = `set -e
for d in "$@"; do echo $$ > "$d/cgroup.procs"; done
mkdir -p /run/systemd
mount -t tmpfs -o mode=0755 modelslot-systemdtest /run/systemd
mkdir /run/systemd/system
exec ` + SystemdBinary + ` --user`

var managerSeq atomic.Int64

// Manager is a running private user manager. Its fields are read-only.
type Manager struct {
	RuntimeDir string // XDG_RUNTIME_DIR of the manager: holds systemd/private and bus
	UnitDir    string // where WriteUnit puts unit files ($XDG_CONFIG_HOME/systemd/user)
	LogFile    string // stdout/stderr of the launch: mount or exec errors (systemd 252 --user writes little there)
	PID        int    // the manager's PID

	cmd    *exec.Cmd
	exited chan struct{}
	cgroup *managerCgroup
	home   string
}

// Start launches a private user manager for t and registers its teardown with
// t.Cleanup. It skips t only when not root or when systemd is not installed.
func Start(t testing.TB) *Manager {
	t.Helper()
	Need(t)
	m, err := start(context.Background())
	if err != nil {
		t.Fatalf("start a private systemd --user manager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop the test systemd manager: %v", err)
		}
	})
	return m
}

// Need skips t when the harness cannot run here (SkipReason), and fails it in
// CI, which installs systemd and runs as root: a skip there would hide it.
func Need(t testing.TB) {
	t.Helper()
	if reason := SkipReason(); reason != "" {
		testutil.Missing(t, "%s", reason)
	}
}

// SkipReason says why the harness cannot run here, or "" when it can.
func SkipReason() string {
	if os.Geteuid() != 0 {
		return "systemdtest: needs root (a private mount namespace and cgroups for systemd --user); run the tests as root"
	}
	if _, err := os.Stat(SystemdBinary); err != nil {
		return "systemdtest: " + SystemdBinary + " is missing; install the systemd package"
	}
	return ""
}

func start(ctx context.Context) (*Manager, error) {
	// Not t.TempDir: a unix socket path must fit in 108 bytes, and test names are long.
	home, err := os.MkdirTemp("", "msd")
	if err != nil {
		return nil, fmt.Errorf("create manager home: %w", err)
	}
	m := &Manager{
		RuntimeDir: filepath.Join(home, "run"),
		UnitDir:    filepath.Join(home, "config", "systemd", "user"),
		LogFile:    filepath.Join(home, "manager.log"),
		exited:     make(chan struct{}),
		home:       home,
	}
	if err := m.launch(); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	if err := m.waitReady(ctx); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

func (m *Manager) launch() error {
	if err := os.Mkdir(m.RuntimeDir, 0o700); err != nil {
		return fmt.Errorf("create runtime dir: %w", err)
	}
	if err := os.MkdirAll(m.UnitDir, 0o755); err != nil {
		return fmt.Errorf("create unit dir: %w", err)
	}
	name := fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), managerSeq.Add(1))
	cg, err := newManagerCgroup(name)
	if err != nil {
		return err
	}
	m.cgroup = cg
	if err := m.exec(); err != nil {
		return errors.Join(err, cg.remove())
	}
	return nil
}

// Kill ends the manager alone with SIGKILL, as a crash would: the processes of
// its units go on running, supervised by nobody. Relaunch starts it again.
func (m *Manager) Kill(t testing.TB) {
	t.Helper()
	_ = syscall.Kill(m.PID, syscall.SIGKILL)
	if !m.waitExit(exitTimeout) {
		t.Fatalf("manager %d did not die of SIGKILL", m.PID)
	}
}

// Exit asks the manager to exit, as a stop of a user manager does: it stops its
// units first. Relaunch starts it again.
func (m *Manager) Exit(t testing.TB) {
	t.Helper()
	if out, err := m.Systemctl("exit"); err != nil {
		t.Fatalf("systemctl --user exit: %v\n%s", err, out)
	}
	if !m.waitExit(exitTimeout) {
		t.Fatalf("manager %d did not exit", m.PID)
	}
}

// Relaunch starts a new manager after Kill or Exit, with the same home, unit
// files, runtime directory (so the same bus address) and cgroup, and waits
// until it answers. Like a real restart, it knows nothing of what the old one
// ran: its units start inactive.
func (m *Manager) Relaunch(t testing.TB) {
	t.Helper()
	if err := os.RemoveAll(m.RuntimeDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.RuntimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	m.exited = make(chan struct{})
	if err := m.exec(); err != nil {
		t.Fatalf("relaunch the manager: %v", err)
	}
	if err := m.waitReady(context.Background()); err != nil {
		t.Fatalf("relaunched manager: %v", err)
	}
}

// exec starts the manager process in m's cgroup.
func (m *Manager) exec() error {
	cg := m.cgroup
	logf, err := os.OpenFile(m.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create manager log: %w", err)
	}
	defer logf.Close()
	m.cmd = exec.Command("/bin/sh", append([]string{"-c", launchScript, "sh"}, cg.join...)...)
	m.cmd.Env = m.managerEnv()
	m.cmd.Dir = m.home
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:       true,
		Unshareflags: syscall.CLONE_NEWNS,
		// A test binary killed by -timeout runs no Cleanup: the manager then gets
		// SIGTERM, on which a user manager stops its units and exits.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("launch %s --user: %w", SystemdBinary, err)
	}
	m.PID = m.cmd.Process.Pid
	cmd, exited := m.cmd, m.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	return nil
}

// managerEnv is the whole environment of the manager: nothing of the test's own
// environment leaks in (no NOTIFY_SOCKET, no session bus of the caller).
func (m *Manager) managerEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + m.home,
		"LANG=C.UTF-8",
		"XDG_RUNTIME_DIR=" + m.RuntimeDir,
		"XDG_CONFIG_HOME=" + filepath.Join(m.home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(m.home, "data"),
		"XDG_STATE_HOME=" + filepath.Join(m.home, "state"),
		"XDG_CACHE_HOME=" + filepath.Join(m.home, "cache"),
		"SYSTEMD_LOG_TARGET=console",
		"SYSTEMD_LOG_LEVEL=info",
	}
}

// waitReady polls the manager's private socket until it answers a D-Bus call.
func (m *Manager) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		err := m.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("manager exited before it was ready (%s); its log:\n%s", m.cmd.ProcessState, m.Log())
		case <-ctx.Done():
			return fmt.Errorf("manager not ready after %s: %w; its log:\n%s", readyTimeout, err, m.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Log returns what the manager wrote so far (its only log: there is no journal).
func (m *Manager) Log() string {
	data, _ := os.ReadFile(m.LogFile)
	return string(data)
}
