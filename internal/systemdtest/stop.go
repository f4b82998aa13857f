package systemdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Stop ends the manager and everything it started, then removes its cgroups and
// directories. It signals only the manager's PID and the processes in the
// manager's own cgroup. Start registers it with t.Cleanup; calling it twice is
// harmless.
func (m *Manager) Stop() error {
	if m.cmd == nil {
		return nil
	}
	var errs []error
	if !m.stopManager() {
		errs = append(errs, fmt.Errorf("manager %d ignored exit, SIGTERM and SIGKILL", m.PID))
	}
	if m.cgroup != nil {
		errs = append(errs, m.cgroup.killAll(termTimeout), m.cgroup.remove())
	}
	errs = append(errs, os.RemoveAll(m.home))
	m.cmd = nil
	return errors.Join(errs...)
}

// stopManager asks the manager to exit (it stops its units first), then escalates
// to SIGTERM and SIGKILL of its PID. It reports whether the manager is gone.
func (m *Manager) stopManager() bool {
	select {
	case <-m.exited:
		return true
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	if _, err := m.SystemctlContext(ctx, "exit"); err == nil && m.waitExit(exitTimeout) {
		return true
	}
	_ = syscall.Kill(m.PID, syscall.SIGTERM)
	if m.waitExit(termTimeout) {
		return true
	}
	_ = syscall.Kill(m.PID, syscall.SIGKILL)
	return m.waitExit(termTimeout)
}

func (m *Manager) waitExit(timeout time.Duration) bool {
	select {
	case <-m.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}
