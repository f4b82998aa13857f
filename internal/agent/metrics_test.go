package agent

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
)

func scrapeMetrics(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// TestCountersStartAtZeroAndManualRollbacksApart: every series an alert's
// increase() watches exists at 0 before the first event, and a rollback
// someone asked for is not counted as a failed update.
func TestCountersStartAtZeroAndManualRollbacksApart(t *testing.T) {
	m := newMetrics(testConfig(t))
	got := scrapeMetrics(t, m)
	want := []string{
		`modelslot_updates_total{model="demo",result="rolled_back"} 0`,
		`modelslot_updates_total{model="demo",result="failed"} 0`,
		`modelslot_updates_total{model="demo",result="success"} 0`,
		`modelslot_manual_rollbacks_total{model="demo"} 0`,
		`modelslot_commands_total{action="unknown",result="rejected"} 0`,
		`modelslot_download_corrupt_total{model="demo"} 0`,
	}
	for _, code := range reason.All {
		if code != reason.Manual {
			want = append(want, `modelslot_rollbacks_total{model="demo",reason="`+string(code)+`"} 0`)
		}
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing before any event: %s", w)
		}
	}
	m.count("demo", &report.Event{Status: report.StatusRolledBack, FailureReason: string(reason.Manual)})
	m.count("demo", &report.Event{Status: report.StatusRolledBack, FailureReason: string(reason.CrashLoop)})
	m.count("demo", &report.Event{Status: report.StatusRejected, FailureReason: ReasonInvalidCommand})
	m.count("demo", &report.Event{Status: report.StatusNothingToDo})
	got = scrapeMetrics(t, m)
	for _, w := range []string{
		`modelslot_manual_rollbacks_total{model="demo"} 1`,
		`modelslot_updates_total{model="demo",result="rolled_back"} 1`,
		`modelslot_rollbacks_total{model="demo",reason="crash_loop"} 1`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("after a manual and a failed rollback, missing %s", w)
		}
	}
	if strings.Contains(got, `reason="manual"`) || strings.Contains(got, `modelslot_updates_total{model="demo",result="rejected"`) ||
		strings.Contains(got, `modelslot_updates_total{model="demo",result="nothing_to_do"`) {
		t.Errorf("a manual rollback, a rejection or nothing_to_do counted as an update:\n%s", got)
	}
}
