package systemd

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

func TestWatchSeesWatchdogTimeout(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "hang.service", "-watchdog-for 500ms",
		"WatchdogSec=1", "Restart=on-failure", "RestartSec=100ms")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	f := firstFailure(t, b.m.Watch(stepCtx(t, 10*time.Second), unit, Limits{}), 10*time.Second)
	if f == nil || f.Reason != ReasonWatchdog {
		t.Fatalf("failure = %+v, want %s", f, ReasonWatchdog)
	}
}

func TestWatchSeesWatchdogTimeoutWithoutRestart(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "hang-once.service", "-watchdog-for 200ms", "WatchdogSec=1")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	f := firstFailure(t, b.m.Watch(stepCtx(t, 10*time.Second), unit, Limits{}), 10*time.Second)
	if f == nil || f.Reason != ReasonWatchdog {
		t.Fatalf("failure = %+v, want %s", f, ReasonWatchdog)
	}
	testutil.WaitFor(t, 3*time.Second, "the unit failed by its watchdog", func() bool {
		return b.h.Show(t, unit, "ActiveState") == "failed" && b.h.Show(t, unit, "Result") == "watchdog"
	})
}

func TestWatchSeesCrashLoop(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "dies.service", "-exit-after 300ms -exit-code 2",
		"Restart=on-failure", "RestartSec=100ms")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	f := firstFailure(t, b.m.Watch(stepCtx(t, 10*time.Second), unit, Limits{}), 10*time.Second)
	if f == nil || f.Reason != ReasonCrashLoop {
		t.Fatalf("failure = %+v, want %s", f, ReasonCrashLoop)
	}
}

func TestWatchSeesNeverReadyAsStartTimeout(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "slowstart.service", "-ready=false", "TimeoutStartSec=infinity")
	if out, err := b.h.Systemctl("start", "--no-block", unit); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	start := time.Now()
	f := firstFailure(t, b.m.Watch(stepCtx(t, 10*time.Second), unit, Limits{StartTimeout: time.Second}), 10*time.Second)
	if f == nil || f.Reason != ReasonStartTimeout {
		t.Fatalf("failure = %+v, want %s", f, ReasonStartTimeout)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("start_timeout after %s, before the 1s limit", took)
	}
}

func TestWatchSeesMemoryOverLimit(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "fat.service", "-alloc-mb 48")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	f := firstFailure(t, b.m.Watch(stepCtx(t, 10*time.Second), unit, Limits{MaxMemory: 32 << 20}), 10*time.Second)
	if f == nil || f.Reason != ReasonMemory || f.Status.Memory < 48<<20 {
		t.Fatalf("failure = %+v, want %s with at least 48 MiB", f, ReasonMemory)
	}
	t.Logf("memory %d bytes from %s", f.Status.Memory, f.Status.MemorySource)
}

// The fallback is what this project's machines use (MemoryCurrent is not set for
// a user manager in its own cgroup on cgroup v1); test it even where systemd
// does know the figure.
func TestMemoryFallbackCountsTheUnitsProcesses(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "fat.service", "-alloc-mb 40", "MemoryAccounting=no")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	st, err := b.m.Status(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MemoryCurrent %d, ControlGroup %s", st.MemoryCurrent, st.ControlGroup)
	if st.MemoryCurrent == MemoryUnknown && st.MemorySource != MemoryFromRSS {
		t.Errorf("MemoryCurrent unknown but memory came from %q, want the RSS fallback", st.MemorySource)
	}
	forced := st
	forced.MemoryCurrent = MemoryUnknown
	mem, source := memoryOf(forced)
	if source != MemoryFromRSS || mem < 40<<20 || mem > 200<<20 {
		t.Errorf("fallback: %d bytes from %q, want 40–200 MiB from rss", mem, source)
	}
	byTree, n := ProcessRSS("", st.MainPID)
	if n != 1 || byTree < 40<<20 {
		t.Errorf("MainPID tree: %d bytes over %d processes, want ≥ 40 MiB over 1", byTree, n)
	}
	f := firstFailure(t, b.m.Watch(ctx, unit, Limits{MaxMemory: 20 << 20}), 5*time.Second)
	if f == nil || f.Reason != ReasonMemory {
		t.Fatalf("failure = %+v, want %s", f, ReasonMemory)
	}
}

func TestWatchOfHealthyUnitEndsWithoutVerdict(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "fine.service", "", "WatchdogSec=2")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if f := firstFailure(t, b.m.Watch(ctx, unit, Limits{MaxMemory: 1 << 30}), 5*time.Second); f != nil {
		t.Fatalf("healthy unit reported %+v", f)
	}
	if got := b.h.Show(t, unit, "NRestarts"); got != strconv.Itoa(0) {
		t.Errorf("NRestarts = %s, want 0", got)
	}
}

// The manager re-executing mid-window (an upgrade of systemd, or its restart in
// a test) drops every D-Bus connection; the watch must redial and not fail, and
// still tell a watchdog kill that comes later.
func TestWatchSurvivesManagerReexec(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "steady.service", "-watchdog-for 2500ms",
		"WatchdogSec=2", "Restart=on-failure", "RestartSec=100ms")
	if err := b.m.Restart(stepCtx(t, 10*time.Second), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	verdict := b.m.Watch(stepCtx(t, 15*time.Second), unit, Limits{})
	time.Sleep(500 * time.Millisecond)
	reexec := time.Now()
	if out, err := b.h.Systemctl("daemon-reexec"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f := firstFailure(t, verdict, 10*time.Second)
	if f == nil || f.Reason != ReasonWatchdog {
		t.Fatalf("failure = %+v, want %s after the reexec", f, ReasonWatchdog)
	}
	// Pings stop 2.5s after start and WatchdogSec is 2: the kill comes ≥ 3.5s in.
	if f.At.Sub(reexec) < 2*time.Second {
		t.Errorf("verdict %s after the reexec: the reexec itself was taken for a failure", f.At.Sub(reexec))
	}
	t.Log(f.Detail)
}
