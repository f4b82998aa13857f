package main

import (
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/crashpoint"
)

// crashScenario is a command that a crash point may interrupt, on a device that
// setup brought to its starting point.
type crashScenario struct {
	name     string
	conf     string // extra [[model]] settings
	setup    func(e *env, m1, m2 string)
	args     func(m1, m2 string) []string
	wantCode int    // exit code when the command is run again after recovery
	want     string // active version in the end
}

// failV2 is a health check that fails for v2 only, so installing v2 reverts.
const failV2 = "[model.health]\n" + `checks = ["test \"$MODELSLOT_VERSION\" != v2"]` + "\n"

var crashScenarios = []crashScenario{
	{name: "first install", args: func(m1, _ string) []string { return []string{"install", "--insecure", "--label", "v1", m1} }, want: "v1"},
	{name: "update", setup: installV1, args: installV2, want: "v2"},
	{name: "update that fails its check", conf: failV2, setup: installV1, args: installV2, wantCode: exitRolledBack, want: "v1"},
	{name: "rollback", setup: installBoth, args: func(_, _ string) []string { return []string{"rollback"} }, want: "v1"},
	{name: "mark-bad", setup: installBoth, args: func(_, _ string) []string { return []string{"mark-bad"} }, want: "v1"},
	{name: "reactivate", setup: func(e *env, m1, m2 string) { installBoth(e, m1, m2); e.must(0, "rollback") }, args: installV2, want: "v2"},
}

func installV1(e *env, m1, _ string) { e.must(0, "install", "--insecure", "--label", "v1", m1) }
func installBoth(e *env, m1, m2 string) {
	installV1(e, m1, m2)
	e.must(0, installV2(m1, m2)...)
}
func installV2(_, m2 string) []string {
	return []string{"install", "--insecure", "--label", "v2", m2}
}

// TestCrashAtEveryPointConverges kills modelslot with SIGKILL at every declared
// crash point, in every scenario that passes it, and checks that the next run
// recovers to a state where the invariants hold and that repeating the command
// reaches the intended end. A crash point that no scenario reaches fails the
// test, so a new step cannot be left without a crash test.
func TestCrashAtEveryPointConverges(t *testing.T) {
	m1, m2 := makeModel(t, 3000, 70000, 1), makeModel(t, 5000, 1<<20, 0, 17)
	hit := map[string]bool{}
	for _, point := range storePoints() {
		for _, sc := range crashScenarios {
			t.Run(point+"/"+sc.name, func(t *testing.T) {
				e := newEnv(t)
				e.extraConf = sc.conf
				e.writeConfig()
				if sc.setup != nil {
					sc.setup(e, m1, m2)
				}
				fired, r := e.crashAt(point, sc.args(m1, m2)...)
				if !fired {
					if r.signal != 0 {
						t.Fatalf("killed by %v without reaching %s: %v", r.signal, point, r)
					}
					return // this scenario does not pass this point
				}
				hit[point] = true
				e.checkInvariants()
				e.must(sc.wantCode, sc.args(m1, m2)...)
				if got := e.checkInvariants(); got != sc.want {
					t.Fatalf("after re-running, active version is %q, want %q", got, sc.want)
				}
			})
		}
	}
	for _, point := range storePoints() {
		if !hit[point] {
			t.Errorf("crash point %s is reached by no scenario: add one to crashScenarios", point)
		}
	}
}

// storePoints are the crash points of the slot store and the update; the
// agent's own points (agent.*) are covered by the agent tests, publish's
// (publish.*) by internal/publish's.
func storePoints() []string {
	var names []string
	for _, n := range crashpoint.Names() {
		if !strings.HasPrefix(n, "agent.") && !strings.HasPrefix(n, "publish.") {
			names = append(names, n)
		}
	}
	return names
}

// TestTrialKilledEveryStartRevertsAfterMaxAttempts: a version whose trial kills
// modelslot on every start must not loop forever: after max_attempts the next
// start reverts it.
func TestTrialKilledEveryStartRevertsAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	e.extraConf = "[model.health]\nchecks = [\"true\"]\nmax_attempts = 2\n"
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installV1(e, m1, m2)
	crash := []string{crashpoint.EnvVar + "=trial.before-confirm"}
	if r := e.run(crash, installV2(m1, m2)...); r.signal != syscall.SIGKILL {
		t.Fatalf("install was not killed in its trial: %v", r)
	}
	if r := e.run(crash, "recover"); r.signal != syscall.SIGKILL {
		t.Fatalf("attempt 2: the resumed trial was not killed: %v", r)
	}
	// Attempt 3 is past max_attempts: it reverts without confirming again.
	if r := e.run(crash, "recover"); r.signal != 0 || r.code != 0 {
		t.Fatalf("third start should revert, got %v", r)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q after max_attempts, want v1", got)
	}
	st := e.status()
	if b := st.Slots["b"]; b.Status != "bad" || b.Reason == "" {
		t.Fatalf("slot b = %+v, want bad with a crash_loop reason", b)
	}
}

// TestRandomKillsDuringLargeInstall kills an install of a larger model at a
// random moment; the next run must recover, and repeating the install must
// finish it.
func TestRandomKillsDuringLargeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("large install: skipped in -short mode")
	}
	m1 := makeModel(t, 1<<20)
	m2 := makeModel(t, slices.Repeat([]int{4 << 20}, 16)...) // 64 MiB in 16 files
	killed := 0
	for i := range 10 {
		e := newEnv(t)
		installV1(e, m1, m2)
		cmd := e.command(nil, installV2(m1, m2)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rand.IntN(300)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); timer.Stop() || !ok || !ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Logf("round %d: install finished before the kill at %s", i, delay)
		} else {
			killed++
		}
		if got := e.checkInvariants(); got != "v1" && got != "v2" {
			t.Fatalf("round %d: active version %q", i, got)
		}
		e.must(0, installV2(m1, m2)...)
		if got := e.checkInvariants(); got != "v2" {
			t.Fatalf("round %d: after re-running the install, active %q, want v2", i, got)
		}
	}
	t.Logf("%d of 10 installs were killed midway", killed)
	if killed == 0 {
		t.Fatal("no install was killed midway: the test proved nothing")
	}
}
