package systemdtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

func TestStartRunsNotifyUnitWithWatchdog(t *testing.T) {
	m := Start(t)
	svc := BuildService(t)
	m.WriteUnit(t, "probe.service", fmt.Sprintf(`[Service]
Type=notify
WatchdogSec=2
LimitCORE=0
ExecStart=%s
`, svc))
	if out, err := m.Systemctl("start", "probe.service"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	conn, err := sddbus.NewConnection(m.Dial)
	if err != nil {
		t.Fatalf("connect over D-Bus: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	props, err := conn.GetUnitTypePropertiesContext(ctx, "probe.service", "Service")
	if err != nil {
		t.Fatalf("read Service properties: %v", err)
	}
	if pid, _ := props["MainPID"].(uint32); pid == 0 {
		t.Errorf("MainPID = %v, want a running process", props["MainPID"])
	}
	if got := props["WatchdogUSec"]; got != uint64(2_000_000) {
		t.Errorf("WatchdogUSec = %v, want 2s", got)
	}
	if got := m.Show(t, "probe.service", "ActiveState"); got != "active" {
		t.Errorf("ActiveState = %q, want active", got)
	}
	if !strings.HasPrefix(m.Show(t, "probe.service", "FragmentPath"), m.UnitDir) {
		t.Errorf("unit not loaded from the per-test unit dir %s", m.UnitDir)
	}
	// A shell service notifies through systemd-notify, a child process: that
	// needs NotifyAccess=all.
	m.WriteUnit(t, "shell.service", `[Service]
Type=notify
NotifyAccess=all
WatchdogSec=2
LimitCORE=0
ExecStart=/bin/sh -c 'systemd-notify --ready; while :; do systemd-notify WATCHDOG=1; sleep 0.5; done'
`)
	if out, err := m.Systemctl("start", "shell.service"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := m.Show(t, "shell.service", "SubState"); got != "running" {
		t.Errorf("shell service SubState = %q, want running", got)
	}
}

func TestStopLeavesNothingBehind(t *testing.T) {
	Need(t)
	m, err := start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.WriteUnit(t, "sleeper.service", "[Service]\nExecStart=/bin/sleep 600\n")
	if out, err := m.Systemctl("start", "sleeper.service"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pids := m.cgroup.pids()
	if len(pids) < 2 {
		t.Fatalf("cgroup holds %v, want the manager and sleep", pids)
	}
	// Kill the manager first: its service must not outlive the test either.
	_ = syscall.Kill(m.PID, syscall.SIGKILL)
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still runs after Stop", pid)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", m.cgroup.rel))
	if len(matches) > 0 || fileExists(m.cgroup.join[0]) {
		t.Errorf("cgroups left behind: %v", matches)
	}
	if _, err := os.Stat(m.RuntimeDir); err == nil {
		t.Errorf("runtime dir %s left behind", m.RuntimeDir)
	}
}

func TestManagersRunSideBySide(t *testing.T) {
	a, b := Start(t), Start(t)
	for _, m := range []*Manager{a, b} {
		m.WriteUnit(t, "same-name.service", "[Service]\nExecStart=/bin/sleep 600\n")
		if out, err := m.Systemctl("start", "same-name.service"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	pa, pb := a.Show(t, "same-name.service", "MainPID"), b.Show(t, "same-name.service", "MainPID")
	if pa == pb || pa == "0" || pb == "0" {
		t.Errorf("MainPIDs %s and %s: want two distinct running services", pa, pb)
	}
}

// alive reports whether pid runs; a zombie waiting for PID 1 to reap it does not.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
