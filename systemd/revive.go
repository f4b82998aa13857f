package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Revive readies a unit to be started by modelslot on purpose (an activation
// or a restore): it clears the unit's failed state and start-limit counter
// (reset-failed works on a unit in any state; systemd counts deliberate
// restarts against StartLimitBurst, and a unit that hit the limit while it was
// in auto-restart may still show Result=exit-code), and does the same for the
// sockets that trigger it, starting each one that is not listening: a service
// that hits its start limit takes its socket down with it, and a socket not
// bound by Requires= would stay closed.
func (m *Manager) Revive(ctx context.Context, unit string) error {
	st, err := m.Status(ctx, unit)
	if err != nil {
		return err
	}
	if err := m.ResetFailed(ctx, unit); err != nil {
		return err
	}
	var errs []error
	for _, trigger := range st.TriggeredBy {
		if err := m.ResetFailed(ctx, trigger); err != nil {
			errs = append(errs, err)
			continue
		}
		ts, err := m.Status(ctx, trigger)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ts.ActiveState != "active" {
			if err := m.Start(ctx, trigger); err != nil {
				errs = append(errs, fmt.Errorf("start %s, which triggers %s: %w", trigger, unit, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckLoadable returns an error wrapping ErrUnitUnavailable unless unit is
// loaded: a unit that is not found, masked, or whose file has errors cannot be
// started, and an activation must not move anything before it knows that.
func (m *Manager) CheckLoadable(ctx context.Context, unit string) error {
	st, err := m.Status(ctx, unit)
	if err != nil {
		return err
	}
	switch st.LoadState {
	case "loaded":
		return nil
	case "masked":
		return fmt.Errorf("%w: %s is masked; unmask it (systemctl unmask %s) or fix `unit` in the config", ErrUnitUnavailable, unit, unit)
	case "not-found":
		return fmt.Errorf("%w: %s does not exist; install the unit file or fix `unit` in the config", ErrUnitUnavailable, unit)
	}
	return fmt.Errorf("%w: %s has load state %q; see systemctl status %s", ErrUnitUnavailable, unit, st.LoadState, unit)
}

// ErrUnitUnavailable: the unit cannot be started as it is (not found, masked,
// bad unit file). Test with errors.Is.
var ErrUnitUnavailable = errors.New("unit cannot be started")

// SystemState is the manager's own state: running, degraded, starting,
// stopping…
func (m *Manager) SystemState(ctx context.Context) (string, error) {
	conn, err := m.connection(ctx)
	if err != nil {
		return "", err
	}
	v, err := conn.GetManagerProperty("SystemState")
	if err != nil {
		return "", fmt.Errorf("read the manager's state: %w", err)
	}
	return strings.Trim(v, `"`), nil
}

// KillLeftovers ends the processes a lost manager left running in a unit's
// control group (its main PID as a fallback, if it is still in that group):
// when a service manager dies, its units' processes go on unsupervised, and a
// new manager neither knows nor stops them, so a process of the version being
// reverted would go on answering on the port. SIGTERM first, SIGKILL after
// grace. It returns how many processes it signalled.
func KillLeftovers(ctx context.Context, controlGroup string, mainPID uint32, grace time.Duration) int {
	pids := cgroupPIDs(controlGroup)
	if len(pids) == 0 && mainPID != 0 && inCgroup(int(mainPID), controlGroup) {
		pids = processTree(int(mainPID))
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(alive(pids)) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range alive(pids) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids)
}

func alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// inCgroup reports whether pid is in controlGroup (any hierarchy), so a
// recycled PID is never signalled.
func inCgroup(pid int, controlGroup string) bool {
	if controlGroup == "" {
		return false
	}
	data, err := readProc(pid, "cgroup")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if _, path, ok := cutLast(line, ":"); ok && path == controlGroup {
			return true
		}
	}
	return false
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func readProc(pid int, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), name))
}

// zombie reports a process that has exited but was not reaped yet.
func zombie(pid int) bool {
	data, err := readProc(pid, "stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}
