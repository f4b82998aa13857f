// Package python holds modelslot_serve.py, the stdlib-only Python module an
// inference server uses to be updated by modelslot (sd_notify, socket
// activation, the slot's version, reload on SIGHUP). This Go test runs its
// unit tests, so go test ./... and make test cover it.
package python

import (
	"os"
	"os/exec"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
)

func TestPythonModule(t *testing.T) {
	python := testutil.NeedTool(t, "python3", "python3")
	cmd := exec.Command(python, "-B", "-m", "unittest", "discover", "-s", ".", "-v")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
