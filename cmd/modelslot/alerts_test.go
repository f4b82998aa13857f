package main

import (
	"os/exec"
	"testing"
)

// TestAgentAlertRules runs packaging/prometheus/modelslot-alerts_test.yml:
// each agent alert fires on the first event of a counter that starts at 0
// (as the agent exports them), and a manual rollback fires none.
func TestAgentAlertRules(t *testing.T) {
	cmd := exec.Command("promtool", "test", "rules", "modelslot-alerts_test.yml")
	cmd.Dir = "../../packaging/prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules (Debian's prometheus package; scripts/ci-setup.sh): %v\n%s", err, out)
	}
}
