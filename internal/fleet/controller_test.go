package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/verify"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// rig is a controller on a SQLite file and a real broker, with a clock the
// test moves and a repository serving one signed manifest (v2, sequence 2).
type rig struct {
	t    *testing.T
	c    *Controller
	now  time.Time
	repo *httptest.Server
	sub  mqtt.Client
	seq  int
}

func newRig(t *testing.T, haltAction string) *rig {
	t.Helper()
	key, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	m := &verify.Manifest{Schema: 1, Model: "demo", Version: "v2", Sequence: 2,
		Files: []verify.File{{Path: "w.bin", Size: 1, Mode: 0o644, SHA256: strings.Repeat("ab", 32)}}}
	env, err := verify.SignManifest(m, key)
	if err != nil {
		t.Fatal(err)
	}
	repo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(env) }))
	t.Cleanup(repo.Close)
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := mqtttest.Start(t)
	f := config.Fleet{StateDir: dir, Broker: b.URL(), Tick: config.Duration(time.Hour), HaltAction: haltAction,
		ProgressTimeout: config.Duration(time.Minute), DocumentTTL: config.Duration(time.Hour)}
	r := &rig{t: t, now: t0, repo: repo, sub: mqtttest.Connect(t, b, "sub")}
	r.c = New(f, "modelslot", db, key)
	r.c.Now = func() time.Time { return r.now }
	if err := r.c.connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.c.mqtt.Disconnect(100) })
	waitFor(t, "the controller connected", func() bool { return r.c.mqtt.IsConnectionOpen() })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// device reports one event of device id, as its agent would.
func (r *rig) device(id, status, version, rolloutID, reason string) {
	r.t.Helper()
	r.seq++
	ev := report.Event{Event: report.EventType, EventID: fmt.Sprint("e", r.seq), DeviceID: id, Model: "demo",
		Status: status, CurrentVersion: version, TargetVersion: "v2", RolloutID: rolloutID, FailureReason: reason, Timestamp: r.now}
	b, _ := json.Marshal(ev)
	if err := r.c.ingestEvent(context.Background(), b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) create(stages ...rollout.Stage) *store.Rollout {
	r.t.Helper()
	ro, err := r.c.Create(context.Background(), CreateRequest{ID: "r1", Model: "demo", Channel: "stable",
		ManifestURL: r.repo.URL + "/demo/manifests/v2.json", Stages: stages, AbortRollback: true, Salt: "s"})
	if err != nil {
		r.t.Fatal(err)
	}
	return ro
}

func (r *rig) step() *rollout.Rollout {
	r.t.Helper()
	if err := r.c.evaluateAll(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	ro, err := r.c.DB.GetRollout(context.Background(), "r1")
	if err != nil {
		r.t.Fatal(err)
	}
	return &ro.Doc
}

// inStage returns a device id of stage s under salt "s".
func inStage(stages []rollout.Stage, s, skip int) string {
	r := &rollout.Rollout{Salt: "s", Stages: stages}
	for i := 0; ; i++ {
		if id := fmt.Sprint("dev-", i); r.StageOf(id) == s {
			if skip == 0 {
				return id
			}
			skip--
		}
	}
}

var twoStages = []rollout.Stage{
	{Share: 5000, MinSoak: rollout.Duration(time.Minute), Success: 10000, MaxFailures: 1},
	{Share: 10000, MinSoak: rollout.Duration(time.Minute), Success: 10000, MaxFailures: 1},
}

func TestCreateReadsTheTargetFromTheManifest(t *testing.T) {
	r := newRig(t, "halt")
	ro := r.create(twoStages...)
	tg := ro.Doc.Target
	if tg.Version != "v2" || tg.Sequence != 2 || len(tg.ManifestSHA256) != 64 || ro.Doc.State != rollout.StateRunning {
		t.Fatalf("created %+v", ro.Doc)
	}
	_, err := r.c.Create(context.Background(), CreateRequest{ID: "r2", Model: "demo", Channel: "stable",
		ManifestURL: r.repo.URL + "/x.json", Stages: twoStages})
	if err == nil || !strings.Contains(err.Error(), "abort it first") {
		t.Fatalf("second running rollout of one channel: %v", err)
	}
	_, err = r.c.Create(context.Background(), CreateRequest{ID: "r3", Model: "other", Channel: "stable",
		ManifestURL: r.repo.URL + "/x.json", Stages: twoStages})
	if err == nil || !strings.Contains(err.Error(), `not "other"`) {
		t.Fatalf("manifest of another model: %v", err)
	}
}

func TestStageOpensOnlyAfterSoakAndSuccess(t *testing.T) {
	r := newRig(t, "halt")
	first, second := inStage(twoStages, 0, 0), inStage(twoStages, 1, 0)
	r.device(first, report.StatusSuccess, "v1", "", "")
	r.device(second, report.StatusSuccess, "v1", "", "")
	r.create(twoStages...)
	r.device(first, report.StatusDownloading, "v1", "r1", "")
	r.device(first, report.StatusSuccess, "v2", "r1", "")
	if d := r.step(); d.Stage != 0 {
		t.Fatalf("stage %d opened before the soak", d.Stage)
	}
	r.now = r.now.Add(time.Minute)
	if d := r.step(); d.Stage != 1 || d.Revision != 2 {
		t.Fatalf("after soak and success: stage %d revision %d", d.Stage, d.Revision)
	}
	r.now = r.now.Add(2 * time.Minute)
	if d := r.step(); d.State != rollout.StateRunning {
		t.Fatalf("completed without the second stage's device: %s", d.State)
	}
	r.device(second, report.StatusSuccess, "v2", "r1", "")
	if d := r.step(); d.State != rollout.StateCompleted {
		t.Fatalf("state %s after every device succeeded", d.State)
	}
}

func TestFailureThresholdHaltsOrAbortsAtOnce(t *testing.T) {
	for _, action := range []string{"halt", "abort"} {
		t.Run(action, func(t *testing.T) {
			r := newRig(t, action)
			first := inStage(twoStages, 0, 0)
			r.device(first, report.StatusSuccess, "v1", "", "")
			r.create(twoStages...)
			r.device(first, report.StatusFailed, "v1", "r1", "check_failed")
			evs, err := r.c.DB.Events(context.Background(), "r1", first, 10)
			if err != nil || len(evs) != 1 || evs[0].FailureReason != "check_failed" || evs[0].DeviceID != first {
				t.Fatalf("event history of r1: %+v, %v", evs, err)
			}
			d := r.step()
			want := map[string]string{"halt": rollout.StateHalted, "abort": rollout.StateAborted}[action]
			if d.State != want || d.Stage != 0 || !strings.Contains(d.Reason, "1 devices failed") {
				t.Fatalf("after a failure, before any soak: %s stage %d (%s), want %s", d.State, d.Stage, d.Reason, want)
			}
			s, err := r.c.Status(context.Background(), "r1")
			if err != nil || s.Failures["check_failed"] != 1 {
				t.Fatalf("status %+v, %v", s, err)
			}
		})
	}
}

func TestDeviceStuckInProgressCountsAsFailed(t *testing.T) {
	r := newRig(t, "halt")
	first := inStage(twoStages, 0, 0)
	r.device(first, report.StatusSuccess, "v1", "", "")
	r.create(twoStages...)
	r.device(first, report.StatusDownloading, "v1", "r1", "")
	if d := r.step(); d.State != rollout.StateRunning {
		t.Fatalf("halted before the timeout: %s", d.State)
	}
	r.now = r.now.Add(time.Minute + time.Second)
	d := r.step()
	s, _ := r.c.Status(context.Background(), "r1")
	if d.State != rollout.StateHalted || s.Failures["timeout"] != 1 {
		t.Fatalf("after the progress timeout: %s, failures %v", d.State, s.Failures)
	}
}

func TestDocumentIsPublishedRetainedAndKeptFresh(t *testing.T) {
	r := newRig(t, "halt")
	long := append([]rollout.Stage(nil), twoStages...)
	long[0].MinSoak = rollout.Duration(2 * time.Hour) // no stage moves while the document is refreshed
	r.create(long...)
	r.step()
	got := make(chan []byte, 10)
	r.sub.Subscribe("modelslot/rollouts/demo/stable", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() })
	keys := verify.NewKeyring(r.c.Key.Public())
	read := func() *rollout.Rollout {
		select {
		case b := <-got:
			doc, err := rollout.Open(b, keys, rollout.Expect{Model: "demo", Channel: "stable", Now: r.now})
			if err != nil {
				t.Fatal(err)
			}
			return doc
		case <-time.After(5 * time.Second):
			t.Fatal("no retained document")
			return nil
		}
	}
	if d := read(); d.Revision != 1 {
		t.Fatalf("retained revision %d", d.Revision)
	}
	r.now = r.now.Add(31 * time.Minute) // past half of the 1h TTL
	if d := r.step(); d.Revision != 2 || !d.ExpiresAt.Equal(r.now.Add(time.Hour)) || d.Stage != 0 {
		t.Fatalf("refreshed document: %+v", d)
	}
	if d := read(); d.Revision != 2 {
		t.Fatalf("published revision %d after the refresh", d.Revision)
	}
}

func TestAPIErrors(t *testing.T) {
	r := newRig(t, "halt")
	r.create(twoStages...)
	srv := httptest.NewServer(r.c.handler())
	defer srv.Close()
	for _, tt := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/rollouts/nope", "", http.StatusNotFound},
		{"POST", "/v1/rollouts/r1/resume", "", http.StatusConflict},
		{"POST", "/v1/rollouts/r1/explode", "", http.StatusNotFound},
		{"POST", "/v1/rollouts", `{"model": "demo", "bogus": 1}`, http.StatusBadRequest},
		{"POST", "/v1/rollouts", `{"id": "x", "model": "demo", "channel": "beta", "manifest_url": "` + r.repo.URL + `/m.json", "stages": []}`, http.StatusBadRequest},
		{"POST", "/v1/rollouts/r1/pause", `{"reason": "looking into it"}`, http.StatusOK},
		{"POST", "/v1/rollouts/r1/resume", "", http.StatusOK},
		{"GET", "/rollouts/demo/stable.json", "", http.StatusNotFound}, // not published yet: no tick ran
		{"GET", "/v1/devices", "", http.StatusOK},
		{"GET", "/v1/rollouts/r1/events", "", http.StatusOK},
		{"GET", "/v1/rollouts/nope/events", "", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
	h, _ := r.c.DB.RolloutHistory(context.Background(), "r1")
	if len(h) != 3 || h[1].State != rollout.StatePaused || h[1].Reason != "looking into it" {
		t.Fatalf("history %+v", h)
	}
	r.step()
	resp, err := http.Get(srv.URL + "/rollouts/demo/stable.json")
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		t.Fatalf("static document: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/rollouts/demo/stable.json", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil || resp2.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET: %v %v", resp2, err)
	}
	resp2.Body.Close()
}

func TestAPIRequiresTheTokenWhenOneIsSet(t *testing.T) {
	r := newRig(t, "halt")
	r.c.APIToken = "t0ken"
	srv := httptest.NewServer(r.c.handler())
	defer srv.Close()
	for _, tt := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"t0ken", http.StatusUnauthorized}, {"Bearer t0ken", http.StatusOK}} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/devices", nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, resp.StatusCode, tt.want)
		}
	}
	if resp, err := http.Get(srv.URL + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics need no token: %v %v", resp, err)
	}
}
