package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
)

// These tests show the checker failing on each kind of damage a power cut can
// do, on a real store written by the real binary, so a green power-cut run
// means the invariants held, not that the checker looked away.

var binary string // modelslot, built once

func TestMain(m *testing.M) {
	var err error
	if binary, err = testutil.BuildBinary("github.com/modelslot/modelslot/cmd/modelslot"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// disk is a directory laid out like the guest's mounted image, with v1 and v2
// installed (v2 active in slot b, v1 the previous one in slot a).
func disk(t *testing.T) string {
	t.Helper()
	mnt := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		modelslot(t, mnt, nil, "install", "--insecure", "--label", v, model(t, v))
	}
	return mnt
}

func model(t *testing.T, version string) string {
	dir := filepath.Join(t.TempDir(), version)
	os.MkdirAll(filepath.Join(dir, "weights"), 0o755)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"v":"`+version+`"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "weights", "w.bin"), []byte(strings.Repeat(version, 4096)), 0o644)
	return dir
}

func modelslot(t *testing.T, mnt string, env []string, args ...string) error {
	t.Helper()
	cfg, err := writeConfig(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(cfg)
	cmd := exec.Command(binary, append([]string{"--config", cfg}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil && env == nil {
		t.Fatalf("modelslot %v: %v: %s", args, err, out)
	}
	return err
}

// consoleLog is what the driver would have printed; "@a" and "@b" stand for
// the installed_at of that slot on the disk.
func consoleLog(t *testing.T, mnt string, lines ...string) *serialLog {
	t.Helper()
	v, err := slots.OpenView(storeConfig(mnt))
	if err != nil {
		t.Fatal(err)
	}
	st := v.State()
	r := strings.NewReplacer("@a", outcomeOf(st, "a", "").Installed, "@b", outcomeOf(st, "b", "").Installed)
	l, err := parseLog(strings.NewReader(r.Replace(strings.Join(lines, "\r\n") + "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func judgeDisk(mnt string, l *serialLog) error {
	return judge(context.Background(), binary, mnt, l)
}

func wantFail(t *testing.T, err error, kind, words string) {
	t.Helper()
	f, ok := err.(*failure)
	if !ok || f.kind != kind || !strings.Contains(err.Error(), words) {
		t.Fatalf("got %v, want a %s failure saying %q", err, kind, words)
	}
}

func TestIntactDiskPasses(t *testing.T) {
	mnt := disk(t)
	l := consoleLog(t, mnt, "START a v1 @a", "BEGIN 1 install v2 b @b", "ACK 1 install v2 b @b 500ms")
	if err := judgeDisk(mnt, l); err != nil {
		t.Fatal(err)
	}
}

func TestLostAcknowledgementFails(t *testing.T) {
	mnt := disk(t)
	// The console saw v1 come back by rollback, the disk still serves v2.
	l := consoleLog(t, mnt, "START a v1 @a", "ACK 1 install v2 b @b", "BEGIN 2 rollback v1 a @a", "ACK 2 rollback v1 a @a")
	wantFail(t, judgeDisk(mnt, l), kindLost, "acknowledged v1 in slot a")
}

func TestTornFileInServedSlotFails(t *testing.T) {
	mnt := disk(t)
	// What a rename made durable before its data looks like: an empty file.
	if err := os.Truncate(filepath.Join(mnt, "ms/demo/slots/b/weights/w.bin"), 0); err != nil {
		t.Fatal(err)
	}
	l := consoleLog(t, mnt, "START a v1 @a", "ACK 1 install v2 b @b")
	wantFail(t, judgeDisk(mnt, l), kindTorn, "not complete")
}

func TestLinkDisagreeingWithStateFails(t *testing.T) {
	mnt := disk(t)
	link := filepath.Join(mnt, "ms/demo/current")
	os.Remove(link)
	os.Symlink("slots/a", link)
	l := consoleLog(t, mnt, "START a v1 @a", "ACK 1 install v2 b @b", "BEGIN 2 rollback v1 a @a")
	wantFail(t, judgeDisk(mnt, l), kindLink, "state.json says active")
}

func TestTruncatedStateFails(t *testing.T) {
	mnt := disk(t)
	l := consoleLog(t, mnt, "START b v2 @b")
	os.Truncate(filepath.Join(mnt, "ms/demo/state.json"), 0)
	wantFail(t, judgeDisk(mnt, l), kindState, "state.json")
}

func TestDriverErrorFails(t *testing.T) {
	mnt := disk(t)
	l := consoleLog(t, mnt, "START a v1 @a", "ACK 1 install v2 b @b", "ERROR 2 modelslot rollback: exit status 1")
	wantFail(t, judgeDisk(mnt, l), kindDriver, "failed step")
}

// A switch whose intent was saved when the power went is finished by recovery:
// that is the step in flight, allowed; without a BEGIN for it, it would be a
// change nobody asked for.
func TestSwitchInFlightIsFinishedByRecovery(t *testing.T) {
	for _, announced := range []bool{true, false} {
		mnt := disk(t)
		env := []string{crashpoint.EnvVar + "=rollback.after-intent"}
		if modelslot(t, mnt, env, "rollback") == nil {
			t.Fatal("the crash point did not kill modelslot")
		}
		lines := []string{"START a v1 @a", "ACK 1 install v2 b @b"}
		if announced {
			lines = append(lines, "BEGIN 2 rollback v1 a @a")
		}
		err := judgeDisk(mnt, consoleLog(t, mnt, lines...))
		if announced && err != nil {
			t.Fatalf("announced rollback: %v", err)
		}
		if !announced {
			wantFail(t, err, kindLost, "after recovery: active is v1 in slot a")
		}
	}
}

// Every step since START lost, back to a state that looks the same by slot and
// version, is still a loss: the copy on disk is older than the one in flight.
func TestIdenticalOlderStateFails(t *testing.T) {
	mnt := disk(t)
	l := consoleLog(t, mnt, "START b v2 @b", "ACK 1 install v1 a 2099-01-01T00:00:00Z", "BEGIN 2 install v2 b new")
	wantFail(t, judgeDisk(mnt, l), kindLost, "acknowledged v1 in slot a")
}

func TestParseLogIgnoresNoiseAndACutLine(t *testing.T) {
	l, err := parseLog(strings.NewReader("[ 1.0] kernel says hi\r\nSTART a v1 none\r\nBEGIN 1 install v2 b new\r\nACK 1 install v2 b T1 7ms\r\nBEGIN 2 rollback v1 a T0\r\nACK 2 roll"))
	if err != nil {
		t.Fatal(err)
	}
	if l.AckedN != 1 || l.Acked != (outcome{"b", "v2", "T1"}) || l.InFlight == nil || *l.InFlight != (outcome{"a", "v1", "T0"}) {
		t.Fatalf("parsed %+v", l)
	}
}
