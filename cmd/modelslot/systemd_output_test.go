package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/report"
)

// The revert of a crashing version tells the platform what the server said as
// it crashed: its rolled_back event carries the unit's last output lines, read
// from the file the unit appends to (StandardOutput=append:, as the harness
// sets; there is no journal here), and status shows them.
func TestSystemdRevertEventCarriesTheCrashingServersOutput(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{})
	d.install(0, "v1")
	d.install(exitRolledBack, "v3-crash")
	const said = `declares behaviour \"crash\": failing on load`
	for _, status := range []string{report.StatusRollingBack, report.StatusRolledBack} {
		ev := outboxEvent(t, d.root, "v3-crash", status)
		if ev.FailureReason != "crash_loop" || len(ev.Logs) < 2 || !strings.HasPrefix(ev.Logs[0], "crash_loop:") {
			t.Fatalf("%s event: reason %q, logs %q; want crash_loop, the reason, then the unit's lines", status, ev.FailureReason, ev.Logs)
		}
		if !containsLine(ev.Logs[1:], said) {
			t.Fatalf("%s event logs %q lack the server's own line %q", status, ev.Logs, said)
		}
		t.Logf("%s event logs: %q", status, ev.Logs)
	}
	// status shows the unit's lines too, as they are now: v1 serves again and
	// its start-up lines follow the crash's.
	if st := d.status(); !containsLine(st.UnitOutput, said) {
		t.Fatalf("status unit_output %q lacks the server's line %q", st.UnitOutput, said)
	}
	if out := d.must(0, "status").stdout; !strings.Contains(out, "unit output, last lines:") {
		t.Fatalf("status does not show the unit's output:\n%s", out)
	}
}

// outboxEvent returns the event of version with status from the model's outbox.
func outboxEvent(t *testing.T, root, version, status string) report.Event {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "demo", "outbox", "*.json"))
	for _, f := range files {
		var ev report.Event
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("event %s: %v", f, err)
		}
		if ev.TargetVersion == version && ev.Status == status {
			return ev
		}
	}
	t.Fatalf("no %s event of %s among %d in the outbox", status, version, len(files))
	return report.Event{}
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
