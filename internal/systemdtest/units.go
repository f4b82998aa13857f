package systemdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// systemctlTimeout bounds one systemctl call made without a context.
const systemctlTimeout = 30 * time.Second

// PrivateSocket is the manager's own D-Bus socket (no bus daemon in between).
func (m *Manager) PrivateSocket() string {
	return filepath.Join(m.RuntimeDir, "systemd", "private")
}

// BusAddress is the D-Bus address of the manager's private socket, the value of
// modelslot's `[systemd] bus` setting that reaches this manager.
func (m *Manager) BusAddress() string {
	return "unix:path=" + m.PrivateSocket()
}

// Env is the environment a process needs to reach this manager with
// `systemctl --user` or a session-bus client (the manager socket-activates a
// dbus-daemon on $XDG_RUNTIME_DIR/bus when dbus-user-session is installed).
func (m *Manager) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + m.RuntimeDir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(m.RuntimeDir, "bus"),
	}
}

// Dial opens an authenticated connection to the manager's private socket; pass
// it to dbus.NewConnection of github.com/coreos/go-systemd/v22/dbus. There is no
// Hello: the private socket is a direct connection, not a bus.
func (m *Manager) Dial() (*godbus.Conn, error) {
	conn, err := godbus.Dial(m.BusAddress())
	if err != nil {
		return nil, fmt.Errorf("dial test manager at %s: %w", m.PrivateSocket(), err)
	}
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to test manager: %w", err)
	}
	return conn, nil
}

// ping makes one cheap call to see whether the manager answers.
func (m *Manager) ping(ctx context.Context) error {
	conn, err := m.Dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	obj := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	var v godbus.Variant
	return obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		"org.freedesktop.systemd1.Manager", "Version").Store(&v)
}

// WriteUnit writes a unit file into UnitDir and reloads the manager, which does
// not notice new or changed files by itself (not even a new drop-in directory).
func (m *Manager) WriteUnit(t testing.TB, name, text string) string {
	t.Helper()
	path := filepath.Join(m.UnitDir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("create unit dir for %s: %v", name, err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatalf("write unit %s: %v", name, err)
	}
	m.DaemonReload(t)
	return path
}

// DaemonReload makes the manager re-read its unit files.
func (m *Manager) DaemonReload(t testing.TB) {
	t.Helper()
	if out, err := m.Systemctl("daemon-reload"); err != nil {
		t.Fatalf("systemctl --user daemon-reload: %v\n%s", err, out)
	}
}

// Systemctl runs `systemctl --user ARGS...` against this manager and returns its
// combined output.
func (m *Manager) Systemctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), systemctlTimeout)
	defer cancel()
	return m.SystemctlContext(ctx, args...)
}

// SystemctlContext is Systemctl bounded by ctx.
func (m *Manager) SystemctlContext(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = append(os.Environ(), m.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("systemctl --user %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Show returns one property of a unit as `systemctl --user show` prints it.
func (m *Manager) Show(t testing.TB, unit, property string) string {
	t.Helper()
	out, err := m.Systemctl("show", "--value", "-p", property, unit)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}
