package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/verify"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const token = "t0ken"

// rig is a real controller on a real SQLite file (no broker: the dashboard
// reads the database and pause, resume and abort only write it) and its
// dashboard on a loopback server.
type rig struct {
	t   testing.TB
	c   *fleet.Controller
	srv *httptest.Server
	seq int
	now time.Time
}

func newRig(t testing.TB) *rig {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, now: t0.Add(time.Hour)}
	r.c = fleet.New(config.Fleet{DocumentTTL: config.Duration(time.Hour)}, "modelslot", db, key)
	r.c.APIToken = token
	r.c.Now = func() time.Time { return r.now }
	r.srv = httptest.NewServer(New(r.c))
	t.Cleanup(r.srv.Close)
	return r
}

var stages = []rollout.Stage{
	{Share: 5000, MinSoak: rollout.Duration(time.Hour), Success: 10000, MaxFailures: 2},
	{Share: 10000, MinSoak: rollout.Duration(time.Hour), Success: 10000, MaxFailures: 2},
}

func (r *rig) rollout(id, state string, stage int) {
	r.t.Helper()
	ro := &store.Rollout{Doc: rollout.Rollout{Schema: rollout.Schema, ID: id, Revision: 1, Model: "demo", Channel: id, State: state,
		Stage: stage, Stages: stages, Salt: "s", AbortRollback: true, IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
		Target: rollout.Target{Version: "v2", Sequence: 2, ManifestURL: "http://repo/v2.json", ManifestSHA256: strings.Repeat("ab", 32)}},
		StageOpened: t0, Created: t0, Updated: t0}
	if err := r.c.DB.CreateRollout(context.Background(), ro); err != nil {
		r.t.Fatal(err)
	}
}

// event records one event of device id at t0+at, as the controller would.
func (r *rig) event(id, status, version, rolloutID, reason string, at time.Duration, logs ...string) {
	r.t.Helper()
	r.seq++
	ev := &report.Event{Event: report.EventType, EventID: fmt.Sprint("e", r.seq), DeviceID: id, Model: "demo", Status: status,
		CurrentVersion: version, TargetVersion: "v2", RolloutID: rolloutID, FailureReason: reason, Timestamp: t0.Add(at), Logs: logs}
	if _, err := r.c.DB.AddEvent(context.Background(), ev, []byte(fmt.Sprintf(`{"logs": %q}`, logs)), t0.Add(at)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) get(path, tok string) (int, http.Header, string) {
	r.t.Helper()
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (r *rig) overview() string {
	r.t.Helper()
	code, _, body := r.get("/ui/fragments/overview", token)
	if code != http.StatusOK {
		r.t.Fatalf("overview: %d\n%s", code, body)
	}
	return body
}

// article is the part of the page about one rollout.
func article(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<article [^>]*data-rollout="` + regexp.QuoteMeta(id) + `".*?</article>`).FindString(page)
	if m == "" {
		t.Fatalf("no rollout %s on the page:\n%s", id, page)
	}
	return m
}

var buttonRE = regexp.MustCompile(`<button type="button" class="act act-(\w+)" data-action="([^"]*)"`)

// TestActionsOfferedPerRolloutState: a running rollout offers pause and
// abort, a paused one resume and abort, a halted one abort only, an aborted
// or completed one nothing; each button posts to that rollout's API path.
func TestActionsOfferedPerRolloutState(t *testing.T) {
	r := newRig(t)
	want := map[string][]string{
		rollout.StateRunning: {"pause", "abort"}, rollout.StatePaused: {"resume", "abort"},
		rollout.StateHalted: {"abort"}, rollout.StateAborted: nil, rollout.StateCompleted: nil,
	}
	for state := range want {
		r.rollout("r-"+state, state, 0)
	}
	page := r.overview()
	for state, ops := range want {
		var got []string
		for _, m := range buttonRE.FindAllStringSubmatch(article(t, page, "r-"+state), -1) {
			got = append(got, m[1])
			if m[2] != "/v1/rollouts/r-"+state+"/"+m[1] {
				t.Errorf("%s button of r-%s posts to %s", m[1], state, m[2])
			}
		}
		if !slices.Equal(got, ops) {
			t.Errorf("a %s rollout offers %v, want %v", state, got, ops)
		}
	}
	// After a pause through the controller, the page offers what a paused
	// rollout allows.
	if _, err := r.c.Pause(context.Background(), "r-running", ""); err != nil {
		t.Fatal(err)
	}
	a := article(t, r.overview(), "r-running")
	if got := buttonRE.FindAllStringSubmatch(a, -1); len(got) != 2 || got[0][1] != "resume" || !strings.Contains(a, `data-k="state">paused<`) {
		t.Fatalf("after the pause: %v\n%s", got, a)
	}
}

// TestFragmentsNeedTheAPIToken: the data is behind the API's own token
// check; the shell page carries no data, and every answer forbids inline
// scripts and framing.
func TestFragmentsNeedTheAPIToken(t *testing.T) {
	r := newRig(t)
	r.rollout("r1", rollout.StateRunning, 0)
	r.event("secret-device", report.StatusSuccess, "v1", "", "", 0)
	for _, path := range []string{"/ui/fragments/overview", "/ui/fragments/devices/secret-device"} {
		for _, tok := range []string{"", "wrong"} {
			if code, _, body := r.get(path, tok); code != http.StatusUnauthorized || strings.Contains(body, "secret-device") {
				t.Errorf("GET %s with token %q: %d %s", path, tok, code, body)
			}
		}
		if code, h, body := r.get(path, token); code != http.StatusOK || !strings.Contains(body, "secret-device") || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s with the token: %d %v", path, code, h)
		}
	}
	for _, path := range []string{"/ui/", "/ui/devices/secret-device"} {
		code, h, body := r.get(path, "")
		if code != http.StatusOK || strings.Contains(body, "r1") || !strings.Contains(body, `<form id="login"`) {
			t.Errorf("shell %s: %d\n%s", path, code, body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'none'") {
			t.Errorf("shell %s: CSP %q", path, csp)
		}
	}
	for _, f := range []string{"/ui/static/dashboard.js", "/ui/static/dashboard.css"} {
		if code, _, body := r.get(f, ""); code != http.StatusOK || len(body) < 100 {
			t.Errorf("%s: %d", f, code)
		}
	}
}

// TestOverviewCountsStagesAndFailures: devices by version and state, a
// rollout's stage, per-stage counts and failures by reason are the
// controller's own numbers, and a device id is shown escaped.
func TestOverviewCountsStagesAndFailures(t *testing.T) {
	r := newRig(t)
	r.rollout("r1", rollout.StateRunning, 0)
	ro := &rollout.Rollout{Salt: "s", Stages: stages}
	var first, second []string
	for i := 0; len(first) < 3 || len(second) < 1; i++ {
		id := fmt.Sprint("dev-", i)
		if s := ro.StageOf(id); s == 0 && len(first) < 3 {
			first = append(first, id)
		} else if s == 1 && len(second) < 1 {
			second = append(second, id)
		}
	}
	for _, id := range append(slices.Clone(first), second...) {
		r.event(id, report.StatusSuccess, "v1", "", "", 0)
	}
	r.event(first[0], report.StatusSuccess, "v2", "r1", "", time.Minute)
	r.event(first[1], report.StatusRolledBack, "v1", "r1", "check_failed", 2*time.Minute)
	r.event(first[2], report.StatusDownloading, "v1", "r1", "", 3*time.Minute)
	r.event(second[0], report.StatusRolledBack, "v1", "", "manual", 4*time.Minute) // asked for: not a failure
	evil := `<img src=x onerror=alert(1)>`                                         // a device names itself: the page must not run it
	bad := &report.Event{Event: report.EventType, EventID: "evil", DeviceID: evil, Model: "other", Status: report.StatusSuccess, CurrentVersion: "v1"}
	if _, err := r.c.DB.AddEvent(context.Background(), bad, []byte(`{}`), t0); err != nil {
		t.Fatal(err)
	}
	s, err := r.c.Status(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	page := r.overview()
	if strings.Contains(page, evil) || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Fatalf("a device id is not escaped:\n%s", page)
	}
	a := article(t, page, "r1")
	for _, want := range []string{
		`data-k="state">running<`, `data-k="stage">stage 1 of 2<`,
		fmt.Sprintf(`data-k="cohort">%d<`, s.Cohort), fmt.Sprintf(`data-k="failed">%d<`, s.Failed),
		`<tr data-reason="check_failed"><th>check_failed</th><td class="n">1</td>`,
	} {
		if !strings.Contains(a, want) {
			t.Errorf("rollout lacks %s:\n%s", want, a)
		}
	}
	row := regexp.MustCompile(`(?s)<tr data-stage="0".*?</tr>`).FindString(a)
	for k, n := range map[string]int{"devices": 3, "succeeded": 1, "failed": 1, "in_progress": 1, "waiting": 0} {
		if !strings.Contains(row, fmt.Sprintf(`data-k="%s">%d<`, k, n)) {
			t.Errorf("stage 1 row: want %s %d:\n%s", k, n, row)
		}
	}
	for _, seg := range []string{`<rect class="succeeded" x="0.00" width="33.33"`, `<rect class="failed" x="33.33" width="33.33"`, `<rect class="in-progress" x="66.67" width="33.33"`} {
		if !strings.Contains(row, seg) {
			t.Errorf("stage bar lacks %s:\n%s", seg, row)
		}
	}
	if !strings.Contains(regexp.MustCompile(`(?s)<tr data-stage="1".*?</tr>`).FindString(a), `class="closed"`) {
		t.Errorf("stage 2 is not shown as not opened yet")
	}
	model := regexp.MustCompile(`(?s)<section class="model" data-model="demo">.*?</section>`).FindString(page)
	for _, want := range []string{
		`<tr data-key="v1"><th>v1</th><td class="n">3</td>`, `<tr data-key="v2"><th>v2</th><td class="n">1</td>`,
		`<tr data-key="rolled_back"><th>rolled_back</th><td class="n">2</td>`,
		`<tr data-key="check_failed"><th>check_failed</th><td class="n">1</td>`,
	} {
		if !strings.Contains(model, want) {
			t.Errorf("model section lacks %s:\n%s", want, model)
		}
	}
	if strings.Contains(model, `data-key="manual"`) {
		t.Errorf("a rollback someone asked for is listed as a failure:\n%s", model)
	}
}

// TestVersionsChartReplaysTheChanges: the chart counts, at each sample, the
// devices on each version after every change up to then; the bands stack to
// the whole fleet, and the SVG names each version with its count now.
func TestVersionsChartReplaysTheChanges(t *testing.T) {
	changes := []store.VersionChange{
		{DeviceID: "a", Version: "v1", At: t0}, {DeviceID: "b", Version: "v1", At: t0},
		{DeviceID: "c", Version: "v1", At: t0.Add(10 * time.Minute)},
		{DeviceID: "a", Version: "v2", At: t0.Add(30 * time.Minute)},
		{DeviceID: "b", Version: "v2", At: t0.Add(45 * time.Minute)},
	}
	end := t0.Add(60 * time.Minute)
	ss, versions := samples(changes, end)
	if len(ss) != chartSteps+1 || !ss[0].At.Equal(t0) || !ss[chartSteps].At.Equal(end) || !slices.Equal(versions, []string{"v1", "v2"}) {
		t.Fatalf("%d samples from %s to %s, versions %v", len(ss), ss[0].At, ss[len(ss)-1].At, versions)
	}
	for _, c := range []struct {
		minute, v1, v2 int
	}{{0, 2, 0}, {10, 3, 0}, {29, 3, 0}, {30, 2, 1}, {50, 1, 2}, {60, 1, 2}} {
		s := ss[c.minute] // one sample a minute over this hour
		if s.ByV["v1"] != c.v1 || s.ByV["v2"] != c.v2 {
			t.Errorf("at +%dm: %v, want v1 %d v2 %d", c.minute, s.ByV, c.v1, c.v2)
		}
	}
	ch := newChart(changes, end)
	if ch.Max != 3 || len(ch.Series) != 2 || ch.Series[0].Now != 1 || ch.Series[1].Now != 2 {
		t.Fatalf("chart max %d series %+v", ch.Max, ch.Series)
	}
	// The top band ends at the top of the plot at the right edge: all 3
	// devices; v1 alone reaches a third of the height there.
	if !strings.HasPrefix(lastPoint(ch.Series[1].Points, chartSteps), "600.0,0.0") ||
		!strings.HasPrefix(lastPoint(ch.Series[0].Points, chartSteps), fmt.Sprintf("600.0,%.1f", chartH*2/3)) {
		t.Fatalf("band tops at the right edge: v1 %s, v2 %s", lastPoint(ch.Series[0].Points, chartSteps), lastPoint(ch.Series[1].Points, chartSteps))
	}
	h := New(nil)
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, "chart", ch); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{
		`<svg viewBox="-40 -10 650 190" class="versions"`, `data-max="3"`,
		`<polygon class="band v0" data-version="v1" points="`, `<title>v1: 1 devices at the chart's end</title>`,
		`<polygon class="band v1" data-version="v2" points="`, `<title>v2: 2 devices at the chart's end</title>`,
		`<b data-version="v2">2</b>`, `>12:00:00Z</text>`, `>13:00:00Z</text>`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s:\n%s", want, svg)
		}
	}
	if n := strings.Count(svg, "<polygon"); n != 2 {
		t.Errorf("%d polygons, want one per version", n)
	}
}

// TestVersionsChartCoversTheLastWeek: a chart of a long-lived fleet spans the
// last chartSpan, starting from the state older changes left.
func TestVersionsChartCoversTheLastWeek(t *testing.T) {
	end := t0.Add(30 * 24 * time.Hour)
	ss, _ := samples([]store.VersionChange{{DeviceID: "a", Version: "v1", At: t0}, {DeviceID: "a", Version: "v2", At: end.Add(-time.Hour)}}, end)
	if !ss[0].At.Equal(end.Add(-chartSpan)) || ss[0].ByV["v1"] != 1 || ss[chartSteps].ByV["v2"] != 1 || ss[chartSteps].ByV["v1"] != 0 {
		t.Fatalf("first sample %s %v, last %v", ss[0].At, ss[0].ByV, ss[chartSteps].ByV)
	}
}

// lastPoint is the i-th point of a polygon's points attribute.
func lastPoint(points string, i int) string { return strings.Fields(points)[i] }

// TestDevicePageHistoryAndRollback: one device's events under any rollout or
// command, newest first, with their logs, and a rollback button per model
// that posts the model to the device's rollback API; an unknown device is 404.
func TestDevicePageHistoryAndRollback(t *testing.T) {
	r := newRig(t)
	r.rollout("r1", rollout.StateRunning, 0)
	r.event("d1", report.StatusSuccess, "v1", "", "", 0)
	r.event("d1", report.StatusSuccess, "v2", "r1", "", time.Minute)
	r.event("d1", report.StatusRolledBack, "v1", "", "", 2*time.Minute, "rolled back by a person")
	code, _, page := r.get("/ui/fragments/devices/d1", token)
	if code != http.StatusOK {
		t.Fatalf("device page: %d %s", code, page)
	}
	if i, j := strings.Index(page, `data-event="e3"`), strings.Index(page, `data-event="e1"`); i < 0 || j < 0 || i > j {
		t.Fatalf("events not newest first:\n%s", page)
	}
	for _, want := range []string{`rolled back by a person`, `data-k="version">v1<`,
		`data-action="/v1/devices/d1/rollback" data-body="{&#34;model&#34;:&#34;demo&#34;}"`} {
		if !strings.Contains(page, want) {
			t.Errorf("device page lacks %s:\n%s", want, page)
		}
	}
	if code, _, _ := r.get("/ui/fragments/devices/nobody", token); code != http.StatusNotFound {
		t.Errorf("unknown device: %d", code)
	}
}
