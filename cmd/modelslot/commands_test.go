package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/report"
)

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestInstallSameVersionTwiceChangesNothing(t *testing.T) {
	e := newEnv(t)
	m1 := makeModel(t, 1000, 2000)
	installV1(e, m1, "")
	state := readState(t, e)
	slotInode := inode(t, filepath.Join(e.root, "demo", "slots", "a"))

	r := e.must(0, "install", "--insecure", "--label", "v1", m1)
	if !strings.Contains(r.stdout, "already active") {
		t.Fatalf("want 'already active', got %q", r.stdout)
	}
	if !bytes.Equal(state, readState(t, e)) {
		t.Fatal("state.json changed on a repeated install")
	}
	if inode(t, filepath.Join(e.root, "demo", "slots", "a")) != slotInode {
		t.Fatal("the active slot was rewritten on a repeated install")
	}
	if _, err := os.Stat(filepath.Join(e.root, "demo", "slots", "b")); !os.IsNotExist(err) {
		t.Fatal("a repeated install wrote the inactive slot")
	}
}

func TestReinstallOfInactiveVersionActivatesWithoutCopy(t *testing.T) {
	e := newEnv(t)
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installBoth(e, m1, m2)
	e.must(0, "rollback")
	slotB := inode(t, filepath.Join(e.root, "demo", "slots", "b", "layer00", "w00.bin"))
	r := e.must(0, installV2(m1, m2)...)
	if !strings.Contains(r.stdout, "without copying") {
		t.Fatalf("want activation without copy, got %q", r.stdout)
	}
	if inode(t, filepath.Join(e.root, "demo", "slots", "b", "layer00", "w00.bin")) != slotB {
		t.Fatal("the inactive slot was copied again")
	}
	if got := e.checkInvariants(); got != "v2" {
		t.Fatalf("active %q", got)
	}
}

func TestSameVersionWithOtherFilesIsRejected(t *testing.T) {
	e := newEnv(t)
	installV1(e, makeModel(t, 100), "")
	r := e.must(exitRejected, "install", "--insecure", "--label", "v1", makeModel(t, 101))
	if !strings.Contains(r.stderr, "already active with different files") {
		t.Fatalf("got %q", r.stderr)
	}
}

func TestUnsafeDirectoryIsRejected(t *testing.T) {
	e := newEnv(t)
	m := makeModel(t, 10)
	os.Symlink("/etc/shadow", filepath.Join(m, "secrets"))
	r := e.must(exitRejected, "install", "--insecure", "--label", "v1", m)
	if !strings.Contains(r.stderr, "secrets") || !strings.Contains(r.stderr, "not a regular file") {
		t.Fatalf("got %q", r.stderr)
	}
	if st := e.status(); st.ActiveSlot != nil || st.Slots["a"].Status != "empty" {
		t.Fatalf("a rejected install changed the slots: %+v", st)
	}
}

func TestRollbackEdgeCases(t *testing.T) {
	e := newEnv(t)
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installV1(e, m1, m2)
	if r := e.must(exitError, "rollback"); !strings.Contains(r.stderr, "nothing to roll back to: only one version") {
		t.Fatalf("rollback with one version: %q", r.stderr)
	}
	e.must(0, installV2(m1, m2)...)
	e.must(0, "rollback")
	if r := e.must(0, "rollback"); !strings.Contains(r.stdout, "nothing to roll back; active: v1") {
		t.Fatalf("second rollback must be a no-op: %q", r.stdout)
	}
	if r := e.must(0, "rollback", "--if-trial"); !strings.Contains(r.stdout, "nothing to roll back") {
		t.Fatalf("rollback --if-trial without a trial: %q", r.stdout)
	}
	if r := e.must(0, "mark-good"); !strings.Contains(r.stdout, "no trial in progress") {
		t.Fatalf("mark-good without a trial: %q", r.stdout)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q", got)
	}
}

func TestFailingCheckRevertsAndIsReported(t *testing.T) {
	e := newEnv(t)
	e.extraConf = failV2
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installV1(e, m1, m2)
	r := e.must(exitRolledBack, installV2(m1, m2)...)
	if !strings.Contains(r.stderr, "rolled back") || !strings.Contains(r.stderr, "check_failed") {
		t.Fatalf("got %q", r.stderr)
	}
	st := e.status()
	if *st.ActiveVersion != "v1" || st.Slots["b"].Status != "bad" || !strings.HasPrefix(st.Slots["b"].Reason, "check_failed:") ||
		st.LastFailure == nil || st.LastFailure.Version != "v2" {
		t.Fatalf("status after a failed check: %+v", st)
	}
	human := e.must(0, "status").stdout
	for _, want := range []string{"slot a  active", "slot b  previous  bad", "last failure: v2", "check_failed"} {
		if !strings.Contains(human, want) {
			t.Errorf("human status lacks %q:\n%s", want, human)
		}
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q", got)
	}
}

func TestUsageAndConfigErrorsExitTwo(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{"frobnicate"},
		{"install", "somewhere"},
		{"install", "--insecure", t.TempDir()},
		{"status", "--bogus"},
	} {
		e.must(exitUsage, args...)
	}
	os.WriteFile(e.config, []byte("[[model]]\nname = \"demo\"\nactivation = \"kick\"\n"), 0o644)
	if r := e.must(exitUsage, "status"); !strings.Contains(r.stderr, `activation "kick"`) {
		t.Fatalf("got %q", r.stderr)
	}
	r := e.run(nil, "--config", "/nonexistent.toml", "status", "--json")
	if r.code != exitUsage || !strings.Contains(r.stderr, `"exit_code":2`) {
		t.Fatalf("a --json command must report its error as JSON: %v", r)
	}
}

// TestSIGTERMDuringInstallLeavesNoHalfSlot: SIGTERM cancels an install cleanly
// (exit 143); the partial slot is removed and the active version keeps serving.
func TestSIGTERMDuringInstallLeavesNoHalfSlot(t *testing.T) {
	e := newEnv(t)
	m1, m2 := makeModel(t, 100), makeModel(t, 300, 32<<20)
	installV1(e, m1, m2)
	r := stopThenTerm(t, e, "install.after-first-file", installV2(m1, m2)...)
	if r.code != exitSignalBase+int(syscall.SIGTERM) || !strings.Contains(r.stderr, "stopped by a signal") {
		t.Fatalf("want exit 143 with a hint, got %v", r)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q", got)
	}
	if b := e.status().Slots["b"]; b.Status != "empty" {
		t.Fatalf("slot b = %+v, want empty", b)
	}
}

// TestSIGTERMDuringTrialResumesInsteadOfReverting: stopping modelslot while a
// check runs must not blame the model; the next start resumes the trial.
func TestSIGTERMDuringTrialResumesInsteadOfReverting(t *testing.T) {
	e := newEnv(t)
	flag := filepath.Join(t.TempDir(), "ok")
	e.extraConf = "[model.health]\nchecks = [\"test -f " + flag + " || sleep 30\"]\n"
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	os.WriteFile(flag, nil, 0o644)
	installV1(e, m1, m2)
	os.Remove(flag)
	r := stopThenTerm(t, e, "trial.before-confirm", installV2(m1, m2)...)
	if r.code != exitSignalBase+int(syscall.SIGTERM) || !strings.Contains(r.stderr, "interrupted; the next modelslot command resumes it") {
		t.Fatalf("want an interrupted trial, got %v", r)
	}
	os.WriteFile(flag, nil, 0o644)
	if got := e.checkInvariants(); got != "v2" { // status resumes the trial, the check now passes
		t.Fatalf("active %q, want v2 after the resumed trial", got)
	}
	if b := e.status().Slots["b"]; b.Status != "good" {
		t.Fatalf("slot b = %+v, want good", b)
	}
}

// stopThenTerm runs modelslot until it stops at point, sends SIGTERM, lets it
// go on, and returns how it ended.
func stopThenTerm(t *testing.T, e *env, point string, args ...string) result {
	t.Helper()
	return stopThenSignal(t, e, point, syscall.SIGTERM, args...)
}

func stopThenSignal(t *testing.T, e *env, point string, sig syscall.Signal, args ...string) result {
	t.Helper()
	cmd := e.command([]string{crashpointEnv(point + ":stop")}, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, cmd.Process.Pid)
	cmd.Process.Signal(sig)
	cmd.Process.Signal(syscall.SIGCONT)
	err := cmd.Wait()
	return resultOf(cmd, err, out.String(), errb.String(), t)
}

// TestEveryStepIsQueuedAsAnEvent: a hand-run install leaves the platform a
// complete, ordered story in the outbox, for the agent to deliver.
func TestEveryStepIsQueuedAsAnEvent(t *testing.T) {
	e := newEnv(t)
	e.extraConf = failV2
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installV1(e, m1, m2)
	e.must(exitRolledBack, installV2(m1, m2)...)
	files, _ := filepath.Glob(filepath.Join(e.root, "demo", "outbox", "*.json"))
	var got []string
	for _, f := range files {
		var ev report.Event
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &ev); err != nil || ev.DeviceID != "test-device" || ev.Model != "demo" || ev.EventID == "" {
			t.Fatalf("event %s: %v %s", f, err, b)
		}
		s := ev.TargetVersion + ":" + ev.Status
		if ev.FailureReason != "" {
			s += "(" + ev.FailureReason + ")"
		}
		if (ev.Status == "rolled_back") != (ev.RollbackTimestamp != nil) || ev.Logs == nil {
			t.Fatalf("event %s: rollback_timestamp only on rolled_back, logs always a list: %s", f, b)
		}
		got = append(got, s)
	}
	want := "v1:installing v1:activating v1:confirming v1:success " +
		"v2:installing v2:activating v2:confirming v2:rolling_back(check_failed) v2:rolled_back(check_failed)"
	if strings.Join(got, " ") != want {
		t.Fatalf("events:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}
