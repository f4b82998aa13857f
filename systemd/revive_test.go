package systemd

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// Revive gets a unit past its start limit in one call: the service and the
// socket that triggers it are reset, and the socket listens again.
func TestReviveClearsTheStartLimitOfTheUnitAndItsSocket(t *testing.T) {
	b := newTestbed(t)
	svc, sock := b.socketActivated(t)
	ctx := stepCtx(t, 15*time.Second)
	st, err := b.m.Status(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.TriggeredBy) != 1 || st.TriggeredBy[0] != "demo.socket" {
		t.Fatalf("TriggeredBy = %v, want [demo.socket]", st.TriggeredBy)
	}
	for i := 0; i < 3 && err == nil; i++ {
		err = b.m.Restart(ctx, svc)
	}
	if !errors.Is(err, ErrStartLimitHit) {
		t.Fatalf("restarts: %v, want ErrStartLimitHit", err)
	}
	if err := b.m.Revive(ctx, svc); err != nil {
		t.Fatalf("Revive: %v", err)
	}
	if err := b.m.Restart(ctx, svc); err != nil {
		t.Fatalf("restart after Revive: %v", err)
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		t.Fatalf("socket closed after Revive: %v", err)
	}
	conn.Close()
	// Revive of a healthy unit is harmless: it stays up, with the same run.
	before, _ := b.m.Status(ctx, svc)
	if err := b.m.Revive(ctx, svc); err != nil {
		t.Fatalf("Revive of an active unit: %v", err)
	}
	after, _ := b.m.Status(ctx, svc)
	if after.ActiveState != "active" || after.InvocationID == "" || after.InvocationID != before.InvocationID {
		t.Fatalf("Revive of an active unit changed it: %+v → %+v", before, after)
	}
}

// A masked or missing unit is refused with ErrUnitUnavailable before anything
// is started.
func TestCheckLoadableRefusesMaskedAndMissingUnits(t *testing.T) {
	b := newTestbed(t)
	svc := b.unit(t, "demo.service", "")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.CheckLoadable(ctx, svc); err != nil {
		t.Fatalf("a loaded unit: %v", err)
	}
	if err := b.m.CheckLoadable(ctx, "nope.service"); !errors.Is(err, ErrUnitUnavailable) {
		t.Fatalf("a missing unit: %v, want ErrUnitUnavailable", err)
	}
	if out, err := b.h.Systemctl("mask", "--runtime", "other.service"); err != nil {
		t.Fatalf("mask: %v %s", err, out)
	}
	if err := b.m.CheckLoadable(ctx, "other.service"); !errors.Is(err, ErrUnitUnavailable) {
		t.Fatalf("a masked unit: %v, want ErrUnitUnavailable", err)
	}
}

// A manager killed with SIGKILL leaves its unit's process running with nobody
// watching it; a watch says so (ReasonUnreachable, not a verdict on the unit)
// once the new manager answers, and KillLeftovers ends the process.
func TestManagerKilledIsUnreachableAndLeftoversAreEnded(t *testing.T) {
	b := newTestbed(t)
	svc := b.unit(t, "demo.service", "")
	ctx := stepCtx(t, 30*time.Second)
	if err := b.m.Restart(ctx, svc); err != nil {
		t.Fatal(err)
	}
	st, err := b.m.Status(ctx, svc)
	if err != nil || st.MainPID == 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	ch := b.m.Watch(ctx, svc, Limits{Unreachable: 20 * time.Second})
	time.Sleep(600 * time.Millisecond) // a few healthy polls
	b.h.Kill(t)
	time.Sleep(time.Second)
	b.h.Relaunch(t)
	f := firstFailure(t, ch, 15*time.Second)
	if f == nil || f.Reason != ReasonUnreachable {
		t.Fatalf("watch across a killed manager: %+v, want %s", f, ReasonUnreachable)
	}
	if syscall.Kill(int(st.MainPID), 0) != nil {
		t.Fatalf("the unit's process %d died with its manager; the test shows nothing", st.MainPID)
	}
	if n := KillLeftovers(ctx, f.Status.ControlGroup, f.Status.MainPID, 2*time.Second); n == 0 {
		t.Fatalf("KillLeftovers found nothing in %q (pid %d)", f.Status.ControlGroup, f.Status.MainPID)
	}
	if len(alive([]int{int(st.MainPID)})) != 0 {
		t.Fatalf("process %d still runs after KillLeftovers", st.MainPID)
	}
}
