package agent

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/testutil"
)

func TestParseCommandRefusesWhatMustNotRun(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	cfg.Agent.BundleDir = dir
	if err := os.WriteFile(filepath.Join(dir, "ok.tar"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ payload, id string }{
		{`{"id":"c1","action":"install","model":"demo","source":"/etc/shadow"}`, "c1"},
		{`{"id":"c2","action":"install","model":"demo","source":"` + dir + `/fifo"}`, "c2"},
		{`{"id":"c3","action":"install","model":"demo","source":"` + dir + `/missing"}`, "c3"},
		{`{"id":"c4","action":"install","model":"demo","source":"` + dir + `/link"}`, "c4"},
		{`{"id":"c5","action":"install","model":"demo","source":"` + dir + `/../x/ok.tar"}`, "c5"},
		{`{"id":"c6","action":"install","model":"demo","source":"file:///etc/passwd"}`, "c6"},
		{`{"id":"c7","action":"explode","model":"demo"}`, "c7"},
		{`{"id":"c8","action":"rollback","model":"other"}`, "c8"},
		{`{"id":"c9","action":"rollback","model":"demo","source":"http://x/y"}`, "c9"},
		{`{"id":"c10","action":"install","model":"demo","source":"http:///nohost"}`, "c10"},
		{`{"id": "c11", "action": `, ""},
		{`{"id":"c12","action":"rollback","model":"demo","pad":"` + strings.Repeat("x", 1<<20) + `"}`, ""},
	} {
		c, err := ParseCommand([]byte(tc.payload), cfg)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%.80s: err = %v, want a refusal", tc.payload, err)
		}
		if c.ID != tc.id {
			t.Errorf("%.80s: refusal names id %q, want %q", tc.payload, c.ID, tc.id)
		}
	}
	for _, ok := range []string{
		`{"id":"o1","action":"install","model":"demo","source":"https://x/demo/channels/stable.json"}`,
		`{"id":"o2","action":"install","model":"demo","source":"` + dir + `/ok.tar"}`,
		`{"id":"o3","action":"rollback","model":"demo","rollout":"r1","local":true}`,
	} {
		c, err := ParseCommand([]byte(ok), cfg)
		if err != nil {
			t.Errorf("%s: %v", ok, err)
		}
		if !c.fromPlatform() {
			t.Errorf("%s: a platform command passed for the agent's own", ok)
		}
	}
	cfg.Agent.BundleDir = ""
	if _, err := ParseCommand([]byte(`{"id":"o2","action":"install","model":"demo","source":"`+dir+`/ok.tar"}`), cfg); !errors.Is(err, ErrRefused) {
		t.Errorf("a local bundle without bundle_dir: err = %v", err)
	}
}

// FuzzParseCommand: no payload makes parsing panic, and whatever it accepts
// is a valid command for a configured model with an acceptable source, that
// the inbox would take.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":"c1","action":"install","model":"demo","source":"https://x/demo/channels/stable.json"}`,
		`{"id":"c2","action":"rollback","model":"demo"}`,
		`{"id":"c3","action":"install","model":"demo","source":"/etc/shadow"}`,
		`{"id":"","action":"mark-good","model":"demo"}`,
		`[1,2]`, `null`, `{"id":1}`,
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseCommand(payload, cfg)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("an error that is not a refusal: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid command: %v", err)
		}
		if c.Rollout != "" || c.ManifestSHA256 != "" || c.Local {
			t.Fatalf("accepted rollout fields from the platform: %+v", c)
		}
		if src := strings.ToLower(c.Source); c.Action == ActionInstall && !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
			t.Fatalf("accepted source %q without a bundle_dir", c.Source)
		}
	})
}

// TestPolledCommandsAreCheckedOneByOne: in a polled list, a refused command
// is answered and dropped while the valid ones are queued.
func TestPolledCommandsAreCheckedOneByOne(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	o, err := session.OpenOutbox(cfg, &cfg.Models[0])
	testutil.OK(t, err)
	a.outboxes = map[string]*report.Outbox{"demo": o}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"id":"p1","action":"rollback","model":"demo"},{"id":"p2","action":"install","model":"demo","source":"/etc/shadow"},{"id":"p3","action":"mark-good","model":"demo"}]`))
	}))
	defer srv.Close()
	p := commandPoller(srv.URL, 0, func(b []byte) error { return a.intake(t.Context(), b) })
	testutil.OK(t, p.poll(t.Context()))
	if _, cmds := a.Inbox.Pending(); len(cmds) != 2 || cmds[0].ID != "p1" || cmds[1].ID != "p3" {
		t.Fatalf("queued %+v, want p1 and p3", cmds)
	}
	evs, err := o.Pending("mqtt", 10)
	testutil.OK(t, err)
	if len(evs) != 1 || evs[0].Status != report.StatusRejected || evs[0].CommandID != "p2" || !strings.Contains(evs[0].Logs[0], "/etc/shadow") {
		t.Fatalf("answers %+v, want one rejection of p2", evs)
	}
}

// TestRefusalForAnUnknownModelUsesTheDeviceOutbox: a command naming a model
// the device does not have is answered through the device's own outbox, not
// filed under another model's events.
func TestRefusalForAnUnknownModelUsesTheDeviceOutbox(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	o, err := session.OpenOutbox(cfg, &cfg.Models[0])
	testutil.OK(t, err)
	dev, err := session.OpenDeviceOutbox(cfg)
	testutil.OK(t, err)
	a.outboxes, a.deviceOutbox = map[string]*report.Outbox{"demo": o}, dev
	testutil.OK(t, a.intake(t.Context(), []byte(`{"id":"x1","action":"rollback","model":"nosuch"}`)))
	testutil.OK(t, a.intake(t.Context(), []byte(`{"id":"x2","action":"frobnicate"}`)))
	if _, cmds := a.Inbox.Pending(); len(cmds) != 0 {
		t.Fatalf("queued %+v: both commands must be refused", cmds)
	}
	devEvs, err := dev.Pending("mqtt", 10)
	testutil.OK(t, err)
	if len(devEvs) != 1 || devEvs[0].CommandID != "x1" || devEvs[0].Status != report.StatusRejected || devEvs[0].Model != "nosuch" {
		t.Fatalf("device outbox %+v, want the rejection of x1", devEvs)
	}
	evs, err := o.Pending("mqtt", 10)
	testutil.OK(t, err)
	if len(evs) != 1 || evs[0].CommandID != "x2" {
		t.Fatalf("model outbox %+v, want only x2 (no model named: the only model's)", evs)
	}
}
