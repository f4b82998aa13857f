package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeviceSideDoesNotImportTheController guards docs/architecture.md's rule:
// the agent and what it uses never depend on the fleet controller (a device
// follows signed documents; it never runs the controller's code).
func TestDeviceSideDoesNotImportTheController(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/modelslot/modelslot/internal/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/modelslot/modelslot/internal/fleet") {
			t.Fatalf("internal/agent depends on %s", pkg)
		}
	}
}
