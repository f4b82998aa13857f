package systemdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// BuildService compiles ./testservice once per test binary and returns the path of
// the executable (see its package doc for the flags). The binary is shared by all
// tests and test binaries at one fixed path, so nothing accumulates in /tmp: each
// build goes to a temp name and is renamed over it, which leaves running copies be.
func BuildService(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "modelslot-testservice")
		if built.err = os.MkdirAll(dir, 0o755); built.err != nil {
			return
		}
		built.path = filepath.Join(dir, "testservice")
		tmp := fmt.Sprintf("%s.%d", built.path, os.Getpid())
		cmd := exec.Command(goTool(), "build", "-o", tmp,
			"github.com/modelslot/modelslot/internal/systemdtest/testservice")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if built.out, built.err = cmd.CombinedOutput(); built.err == nil {
			built.err = os.Rename(tmp, built.path)
		}
	})
	if built.err != nil {
		t.Fatalf("build the test service: %v\n%s", built.err, built.out)
	}
	return built.path
}

// goTool finds the go command: on PATH, or where the official tarball puts it
// (CI's PATH may not name it when tests run under sudo).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
