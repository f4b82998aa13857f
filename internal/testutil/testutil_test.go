package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, "three looks", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("looked %d times", n)
	}
}

func TestBinaryIsBuiltOnceAndRuns(t *testing.T) {
	a := Binary(t, "github.com/modelslot/modelslot/internal/systemdtest/testservice")
	fi, err := os.Stat(a)
	OK(t, err)
	b := Binary(t, "github.com/modelslot/modelslot/internal/systemdtest/testservice")
	fi2, err := os.Stat(b)
	OK(t, err)
	if a != b || !os.SameFile(fi, fi2) {
		t.Fatalf("built twice: %s, %s", a, b)
	}
	root, err := moduleRoot()
	OK(t, err)
	if !strings.HasPrefix(a, os.TempDir()) || strings.Contains(a, root) {
		t.Fatalf("binary at %s: want it in the temp directory, apart from the checkout", a)
	}
	if out, err := exec.Command(a, "--help").CombinedOutput(); err != nil && len(out) == 0 {
		t.Fatalf("the built binary does not run: %v", err)
	}
}
