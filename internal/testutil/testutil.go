// Package testutil holds the few helpers every test package here needs: fail
// on a setup error in one line, wait for a condition with a bound, build one
// of this module's commands once per test process, and hash a directory tree
// to prove nothing in it changed.
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// OK fails the test at once when err is not nil: a setup step that failed
// must not let the test go on and assert on a half-made world.
func OK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond every 20 ms until it holds, and fails the test naming
// what it waited for when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var builds struct {
	mu   sync.Mutex
	done map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the command pkg (an import path of this module) once per test
// process, static (CGO_ENABLED=0), and returns its path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	path, err := BuildBinary(pkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildBinary is Binary for TestMain, where there is no t. The binary goes to
// a directory of its own for this checkout of the module (several checkouts
// test side by side on one machine and must never run each other's build),
// at a fixed name, written to a temp name and renamed over it: nothing
// accumulates in the temp directory, and a copy that runs stays whole.
func BuildBinary(pkg string) (string, error) {
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[string]*build{}
	}
	b := builds.done[pkg]
	if b == nil {
		b = &build{}
		builds.done[pkg] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = compile(pkg) })
	return b.path, b.err
}

func compile(pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), "modelslot-testbin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make the test binary directory: %w", err)
	}
	path := filepath.Join(dir, filepath.Base(pkg))
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	cmd := exec.Command(GoTool(), "build", "-o", tmp, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return path, nil
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// GoTool finds the go command: on PATH, or where the official tarball puts it
// (CI's PATH may not name it when tests run under sudo).
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	OK(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Python is Debian's python3 (/usr/bin/python3), else the first on PATH; it
// skips the test without one. Units run it under ProtectSystem= and
// ProtectHome=, where a pyenv python3 under a home directory is not visible.
func Python(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (apt-get install python3)")
	}
	return p
}

// inCI reports a CI run (.ci/run is started with CI=true), where everything
// the tests need has been installed: a missing part there is a failure, not a
// skip that would hide it.
func inCI() bool { return os.Getenv("CI") != "" }

// Missing ends a test that lacks a part of the machine: a skip on a
// developer's machine, a failure in CI, which installs every part.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("missing in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedTool returns the path of the command tool, skipping the test when it is
// missing on a developer's machine and failing it in CI. pkg names the Debian
// package that brings it (scripts/ci-setup.sh installs it).
func NeedTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	Missing(t, "%s not installed (apt-get install %s; scripts/ci-setup.sh does)", tool, pkg)
	return ""
}

// NeedRoot skips a test that needs root on a developer's machine, and fails it
// in CI, which runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	Missing(t, "needs root (CI runs as root): %s", why)
}
