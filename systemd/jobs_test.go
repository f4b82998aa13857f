package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

func TestRestartAndReloadReturnWhenJobIsDone(t *testing.T) {
	b := newTestbed(t)
	stamp := filepath.Join(t.TempDir(), "stamp")
	unit := b.unit(t, "good.service", "-stamp "+stamp, "ExecReload=/bin/kill -HUP $MAINPID")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	first, err := b.m.Status(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if first.ActiveState != "active" || first.SubState != "running" || first.MainPID == 0 || first.Result != "success" {
		t.Fatalf("after Restart: %+v, want active/running with a MainPID", first)
	}
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatalf("second Restart: %v", err)
	}
	second, _ := b.m.Status(ctx, unit)
	if second.MainPID == first.MainPID || second.NRestarts != 0 {
		t.Errorf("second Restart: MainPID %d → %d, NRestarts %d; want a new process and no automatic restart",
			first.MainPID, second.MainPID, second.NRestarts)
	}
	if err := b.m.Reload(ctx, unit); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// kill -HUP returns before the service reloaded: wait for its own word.
	testutil.WaitFor(t, 3*time.Second, "the service to say it reloaded", func() bool {
		data, _ := os.ReadFile(stamp)
		return strings.Contains(string(data), "reload")
	})
}

func TestRestartOfUnitThatExitsBeforeReadyIsCrashLoop(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "crash.service", "-ready=false -exit-after 200ms -exit-code 3")
	err := b.m.Restart(stepCtx(t, 10*time.Second), unit)
	f := failureOf(t, err, ReasonCrashLoop)
	var jerr *JobError
	if !errors.As(err, &jerr) || jerr.Result != "failed" || jerr.UnitResult != "exit-code" {
		t.Fatalf("job error = %#v, want result failed, unit result exit-code", jerr)
	}
	if !strings.Contains(f.Error(), "crash.service") {
		t.Errorf("error %q does not name the unit", f.Error())
	}
}

// Seen with systemd 252: the job of a Restart= unit fails at the first crash
// instead of waiting through the restarts; either way Restart must not hang.
func TestRestartOfCrashLoopingUnitReturnsBeforeDeadline(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "loop.service", "-ready=false -exit-after 100ms", "Restart=on-failure", "RestartSec=100ms")
	start := time.Now()
	err := b.m.Restart(stepCtx(t, 10*time.Second), unit)
	failureOf(t, err, ReasonCrashLoop)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to see the crash loop", took)
	}
}

func TestRestartOfUnitNeverReadyIsStartTimeout(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "never.service", "-ready=false", "TimeoutStartSec=infinity")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := b.m.Restart(ctx, unit)
	f := failureOf(t, err, ReasonStartTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || f.Status.ActiveState != "activating" {
		t.Errorf("failure %v with state %s: want a deadline while activating", err, f.Status.ActiveState)
	}
}

func TestStartLimitHitIsClearAndResetFailedRecovers(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "limited.service", "", "StartLimitBurst=2", "StartLimitIntervalSec=60")
	ctx := stepCtx(t, 10*time.Second)
	for i := 0; i < 2; i++ {
		if err := b.m.Restart(ctx, unit); err != nil {
			t.Fatalf("restart %d: %v", i+1, err)
		}
	}
	err := b.m.Restart(ctx, unit)
	if !errors.Is(err, ErrStartLimitHit) {
		t.Fatalf("third restart: %v, want ErrStartLimitHit", err)
	}
	if !strings.Contains(err.Error(), "reset-failed") {
		t.Errorf("error %q does not say how to recover", err)
	}
	if err := b.m.ResetFailed(ctx, unit); err != nil {
		t.Fatalf("ResetFailed: %v", err)
	}
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatalf("restart after ResetFailed: %v", err)
	}
}

func TestRestartOfUnknownUnitNamesIt(t *testing.T) {
	b := newTestbed(t)
	err := b.m.Restart(stepCtx(t, 5*time.Second), "no-such.service")
	var f *Failure
	if err == nil || errors.As(err, &f) || !strings.Contains(err.Error(), "no-such.service") {
		t.Fatalf("err = %v, want a plain error naming the unit", err)
	}
}

func TestManagerRedialsAfterReexec(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "steady.service", "")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatal(err)
	}
	if out, err := b.h.Systemctl("daemon-reexec"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var st UnitStatus
	testutil.WaitFor(t, 5*time.Second, "the re-executed manager to answer", func() bool {
		var err error
		st, err = b.m.Status(ctx, unit)
		return err == nil
	})
	if st.ActiveState != "active" {
		t.Errorf("after daemon-reexec: %s, want active", st.ActiveState)
	}
}

func TestCallsAfterCloseFail(t *testing.T) {
	b := newTestbed(t)
	b.m.Close()
	if _, err := b.m.Status(context.Background(), "default.target"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Status after Close: %v, want ErrClosed", err)
	}
}

func TestReloadOfUnitWithoutExecReloadIsARefusal(t *testing.T) {
	b := newTestbed(t)
	unit := b.unit(t, "plain.service", "")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatal(err)
	}
	err := b.m.Reload(ctx, unit)
	var f *Failure
	if err == nil || errors.As(err, &f) || !strings.Contains(err.Error(), "reload plain.service") {
		t.Fatalf("err = %v, want a plain refusal naming the job and unit", err)
	}
	t.Log(err)
}
