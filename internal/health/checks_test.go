package health

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

func TestChecks(t *testing.T) {
	tests := []struct {
		name     string
		commands []string
		wantErr  string // "" means success
	}{
		{"all pass", []string{"true", "test \"$MODELSLOT_VERSION\" = v2"}, ""},
		{"first failure stops", []string{"echo broken >&2; exit 3", "touch /nonexistent/never"}, "check_failed: \"echo broken >&2; exit 3\": exit status 3; output: broken"},
		{"env reaches the check", []string{"test \"$MODELSLOT_VERSION\" = v1"}, "exit status 1"},
		{"timeout is a failure", []string{"sleep 10"}, "timed out after 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Checks{Commands: tt.commands, Timeout: 200 * time.Millisecond, Env: []string{"MODELSLOT_VERSION=v2"}}
			start := time.Now()
			err := c.Run(context.Background())
			if time.Since(start) > 5*time.Second {
				t.Fatalf("Run took %s: a timed-out check must not hang", time.Since(start))
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run error = %v, want it to contain %q", err, tt.wantErr)
			}
			if c, _ := reason.Of(err); c != ReasonCheckFailed || !strings.HasPrefix(err.Error(), string(c)+": ") {
				t.Fatalf("error %q does not start with the failure reason", err)
			}
		})
	}
}

// A check that leaves a child in the background (holding its output pipe)
// and exits 0 passes at once; the child does not outlive it.
func TestCheckWithBackgroundChildPassesPromptly(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := Checks{Commands: []string{"sleep 30 & echo $! > " + pidFile + "; echo started"}, Timeout: 20 * time.Second}
	start := time.Now()
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Run took %s: it must not wait for the background child's pipe", took)
	}
	processGone(t, readPID(t, pidFile))
}

// A process that leaves the check's group (setsid) is out of reach of the
// group kill; it still cannot hold up the verdict by keeping stdout open.
func TestCheckChildThatLeftTheGroupDoesNotHoldUpTheVerdict(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := Checks{Commands: []string{"setsid sh -c 'echo $$ > " + pidFile + "; exec sleep 30' & sleep 0.2; echo ok"}, Timeout: 20 * time.Second}
	start := time.Now()
	err := c.Run(context.Background())
	if pid := readPID(t, pidFile); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL) // it escaped the group: the test cleans up itself
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Run took %s: an escaped child holding stdout must not hold up the verdict", took)
	}
}

// A check that times out is killed with everything it started.
func TestCheckTimeoutKillsItsGrandchildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The grandchild: a subshell that starts sleep, so sleep's parent is not the check's shell.
	c := Checks{Commands: []string{"( sleep 30 & echo $! > " + pidFile + "; wait ) & wait"}, Timeout: 300 * time.Millisecond}
	err := c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("Run = %v, want a timeout", err)
	}
	processGone(t, readPID(t, pidFile))
}

// Whatever a check prints, modelslot keeps a few KiB of it: 300 MB of output
// must neither be buffered nor lose the end, which says what went wrong.
func TestCheckOutputIsBounded(t *testing.T) {
	const size = 300_000_000
	c := Checks{Commands: []string{fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo the end; exit 2", size)}, Timeout: 60 * time.Second}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := c.Run(context.Background())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.HasSuffix(err.Error(), "the end") || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("Run = %.300v, want exit status 2 and the end of the output", err)
	}
	if n := len(err.Error()); n > maxOutput+200 {
		t.Fatalf("failure text is %d bytes, want at most about %d", n, maxOutput)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Fatalf("Run allocated %d MiB for %d MB of output: the output is buffered", alloc>>20, size/1_000_000)
	}
}

func TestTailBufferKeepsTheLastBytes(t *testing.T) {
	var all []byte
	b := newTailBuffer(10)
	for i, n := range []int{3, 9, 1, 25, 0, 7, 10, 4} {
		p := []byte(strings.Repeat(string(rune('a'+i)), n))
		all = append(all, p...)
		b.Write(p)
		want := all[max(0, len(all)-10):]
		if string(b.Bytes()) != string(want) || cap(b.buf) != 20 {
			t.Fatalf("after %d writes: %q (cap %d), want %q", i+1, b.Bytes(), cap(b.buf), want)
		}
	}
	if b.Written() != int64(len(all)) {
		t.Fatalf("Written = %d, want %d", b.Written(), len(all))
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the check did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

// processGone fails unless pid has exited (a zombie counts: it runs nothing,
// and PID 1 in a container may be slow to reap it).
func processGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after the check ended: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
