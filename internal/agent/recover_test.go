package agent

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// TestTrialEndedByRecoveryFinishesItsCommand: the agent was killed while a
// queued install's new version was on trial; at the next start recovery
// resumes the trial, the version fails (a crash loop) and is reverted. That ends
// the install command: it is answered once (rolled_back, with its id) and
// never run again — running it again used to install and activate the
// version that had just failed, once more.
func TestTrialEndedByRecoveryFinishesItsCommand(t *testing.T) {
	root := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`device_id = "d"
state_root = %q
[[model]]
name = "demo"
[model.health]
probe_url = "http://127.0.0.1:%d/"
start_timeout = "1s"
confirm_window = "1s"
max_attempts = 1
`, root, testutil.FreePort(t))))
	testutil.OK(t, err)
	m := &cfg.Models[0]
	s, err := slots.Open(t.Context(), session.StoreConfig(cfg, m), "test")
	testutil.OK(t, err)
	for _, v := range []string{"v1", "v2"} {
		man := &verify.Manifest{Schema: verify.SchemaInline, Model: "demo", Version: v}
		sum, _, _ := verify.HashReader(t.Context(), strings.NewReader(v))
		man.Files = []verify.File{{Path: "w", Size: int64(len(v)), Mode: 0o644, SHA256: sum}}
		fill, err := s.BeginInstall(t.Context(), man)
		testutil.OK(t, err)
		testutil.OK(t, fill.WriteFile(t.Context(), man.Files[0], strings.NewReader(v)))
		testutil.OK(t, fill.Commit(t.Context()))
		testutil.OK(t, s.StartTrial(fill.Slot()))
		if v == "v1" {
			testutil.OK(t, s.CommitTrial())
		}
	}
	s.Close() // killed with v2 on trial

	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	a.answered = map[string]bool{} // as Run sets it
	var calls atomic.Int64
	a.Install = func(context.Context, *session.Session, string, session.InstallOptions) error {
		calls.Add(1)
		return nil
	}
	_, err = a.Inbox.Add(Command{ID: "i2", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/v2.json"})
	testutil.OK(t, err)
	a.recoverAll(t.Context())
	workUntilDone(t, a, 0)
	if calls.Load() != 0 {
		t.Fatalf("the install whose trial recovery ended ran again (%d times)", calls.Load())
	}
	v, err := slots.OpenView(session.StoreConfig(cfg, m))
	testutil.OK(t, err)
	if st := v.State(); st.Trial != nil || st.Slots[st.Active].Version != "v1" {
		t.Fatalf("after recovery: active %s (%+v), want v1 and no trial", st.Active, st.Slots[st.Active])
	}
	o, err := session.OpenOutbox(cfg, m)
	testutil.OK(t, err)
	evs, err := o.Pending("mqtt", 100)
	testutil.OK(t, err)
	var terminal []string
	for _, ev := range evs {
		if ev.Terminal() {
			terminal = append(terminal, ev.CommandID+":"+ev.Status)
		}
	}
	// A trial already interrupted once ends as a crash loop: reverted,
	// reported failed (crash_loop).
	if len(terminal) != 1 || (terminal[0] != "i2:failed" && terminal[0] != "i2:rolled_back") {
		t.Fatalf("terminal events %q, want exactly one for i2, a revert", terminal)
	}
	if m := scrapeMetrics(t, a.metrics); !strings.Contains(m, `modelslot_commands_total{action="install",result="failed"} 1`) {
		t.Fatal("the command recovery ended is not counted as a failed install")
	}
}
