package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

const trialPoint = "trial.before-confirm"

// modelslot killed after the swap, before it judged the new version: the next
// start (any command, here status) resumes the trial, activates and judges it:
// a good version is committed, a bad one reverted.
func TestSystemdTrialKilledBeforeConfirmResumesOnNextStart(t *testing.T) {
	for _, tc := range []struct{ version, want, reason string }{
		{"v2", "v2", ""},
		{"v3-crash", "v1", "crash_loop"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			t.Parallel()
			d := newSDDevice(t, sdOptions{})
			d.install(0, "v1")
			if fired, r := d.crashAt(trialPoint, "install", "--insecure", "--label", tc.version, modelDir(tc.version)); !fired {
				t.Fatalf("crash point %s did not fire: %v", trialPoint, r)
			}
			if st := d.view().State(); st.Trial == nil || st.Trial.Version != tc.version {
				t.Fatalf("after the kill, want a trial of %s pending, got %+v", tc.version, st.Trial)
			}
			st := d.agree(tc.want) // status --json resumed the trial and concluded it
			if tc.reason != "" {
				failedWith(t, st, tc.version, tc.reason)
			} else if st.Slots[*st.ActiveSlot].Status != "good" {
				t.Fatalf("%s not committed: %+v", tc.version, st.Slots)
			}
		})
	}
}

// modelslot killed by SIGKILL at a random moment inside the confirmation
// window, with the new version serving; the next start concludes the trial.
func TestSystemdKilledDuringWindowConcludesOnNextStart(t *testing.T) {
	t.Parallel()
	// A 4 s window and a kill at most 2 s after the new version was first
	// seen serving leave margin for a loaded CI machine.
	d := newSDDevice(t, sdOptions{window: 4 * time.Second})
	d.install(0, "v1")
	p := d.start(nil, "install", "--insecure", "--label", "v2", modelDir("v2"))
	d.inWindow("v2")
	delay := time.Duration(rand.Int64N(int64(2 * time.Second)))
	time.Sleep(delay)
	p.cmd.Process.Kill()
	if r := p.wait(t); r.signal == 0 {
		t.Fatalf("modelslot ended before the kill %s into the window: %v", delay, r)
	}
	t.Logf("killed %s into the window", delay)
	if st := d.view().State(); st.Trial == nil {
		t.Fatal("the kill left no trial: it was not inside the window")
	}
	d.agree("v2")
}

// Killed at the same point on every start: each start counts an attempt, and
// past max_attempts the trial reverts (crash_loop) instead of looping.
func TestSystemdKilledOnEveryStartRevertsAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	const maxAttempts = 2
	d := newSDDevice(t, sdOptions{maxAttempts: maxAttempts})
	d.install(0, "v1")
	kills := 0
	args := []string{"install", "--insecure", "--label", "v2", modelDir("v2")}
	for {
		r := d.run([]string{crashpointEnv(trialPoint)}, args...)
		if r.signal == 0 {
			if r.code != 0 {
				t.Fatalf("the start that gave up on the trial: %v", r)
			}
			break
		}
		kills++
		if kills > maxAttempts+1 {
			t.Fatalf("killed %d times and still trying: the trial loops", kills)
		}
		args = []string{"recover"}
	}
	if kills != maxAttempts {
		t.Fatalf("killed %d times, want %d (max_attempts) before the revert", kills, maxAttempts)
	}
	st := d.agree("v1")
	failedWith(t, st, "v2", "crash_loop")
	if !strings.Contains(st.LastFailure.Reason, "interrupted") {
		t.Errorf("the reason should say the trial was interrupted: %q", st.LastFailure.Reason)
	}
}

// The service manager re-executes itself in the middle of the window: the
// D-Bus connection drops and comes back, and the trial still concludes.
func TestSystemdManagerReexecMidTrialStillConcludes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ version, want, reason string }{
		{"v2", "v2", ""},
		{"v3-hang", "v1", "watchdog_timeout"},
	} {
		d := newSDDevice(t, sdOptions{window: 3 * time.Second})
		d.install(0, "v1")
		oldPID := d.m.Show(t, demoUnit, "MainPID")
		p := d.start(nil, "install", "--insecure", "--label", tc.version, modelDir(tc.version))
		// In the window: a new process of the unit is up under a trial.
		testutil.WaitFor(t, 20*time.Second, "the trial of "+tc.version, func() bool {
			pid := d.m.Show(t, demoUnit, "MainPID")
			return d.view().State().Trial != nil && pid != oldPID && pid != "0" && d.m.Show(t, demoUnit, "ActiveState") == "active"
		})
		d.systemctl(t, "daemon-reexec")
		r := p.wait(t)
		want := 0
		if tc.reason != "" {
			want = exitRolledBack
		}
		if r.code != want {
			t.Fatalf("%s across daemon-reexec: want exit %d, got %v", tc.version, want, r)
		}
		st := d.agree(tc.want)
		if tc.reason != "" {
			failedWith(t, st, tc.version, tc.reason)
		}
	}
}
