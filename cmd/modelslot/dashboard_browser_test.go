package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/modelslot/modelslot/internal/browsertest"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/testutil"
)

// artifactDir is where a test leaves what a person should look at
// (screenshots): $MODELSLOT_ARTIFACTS when set (CI keeps it), else a temp dir.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("MODELSLOT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// screenshot writes the whole page as a PNG artifact.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browsertest.Screenshot(t, ctx, filepath.Join(artifactDir(t), name))
}

// shown is what the overview page shows of the fleet and rollout r1, read in
// one go by the page's own DOM (the page refreshes itself every 2 s).
type shown struct {
	Devices, Online     string
	State, Stage        string
	Cohort, Failed      string
	Stage0              map[string]string
	Failures            map[string]string
	DeviceReason        map[string]string
	PauseButton, Resume bool
	ByVersion           map[string]string
}

const readOverview = `(() => {
  const q = (s, root) => (root || document).querySelector(s);
  const text = (s, root) => { const e = q(s, root); return e ? e.textContent.trim() : ""; };
  const r = q('[data-rollout="r1"]');
  if (!r) return null;
  const cells = (sel, attr) => Object.fromEntries([...document.querySelectorAll(sel)].map(e => [e.getAttribute(attr), e.querySelector('td').textContent.trim()]));
  return {
    Devices: text('[data-k="devices"]'), Online: text('[data-k="online"]'),
    State: text('[data-k="state"]', r), Stage: text('[data-k="stage"]', r),
    Cohort: text('[data-k="cohort"]', r), Failed: text('.totals [data-k="failed"]', r),
    Stage0: Object.fromEntries([...r.querySelectorAll('tr[data-stage="0"] td[data-k]')].map(e => [e.dataset.k, e.textContent.trim()])),
    Failures: Object.fromEntries([...r.querySelectorAll('tr[data-reason]')].map(e => [e.dataset.reason, e.querySelector('td').textContent.trim()])),
    DeviceReason: Object.fromEntries([...document.querySelectorAll('table.devices tr[data-device]')].map(e => [e.dataset.device, text('td.reason', e)])),
    PauseButton: !!q('button.act-pause', r), Resume: !!q('button.act-resume', r),
    ByVersion: cells('section.model[data-model="demo"] [data-counts="version"] tr[data-key]', 'data-key'),
  };
})()`

// TestDashboardInChromiumDuringARollout: real agents on a real broker, `fleet
// serve` with its dashboard, and a real headless Chromium. During a rollout in
// which one device of the first stage fails its health check (and goes back
// to v1) and the other succeeds, the page shows what the API says — device
// counts, the state and stage, the stage's counts, failures by reason, the
// failed device's reason — and offers pause, not resume. Clicking pause
// pauses the rollout in the API, and the page then offers resume instead.
// On the succeeded device's page, "roll back" sends the agent its rollback
// command over MQTT: the device goes back to v1, and its page shows it.
func TestDashboardInChromiumDuringARollout(t *testing.T) {
	ctx := browsertest.Start(t)
	f := newFleet(t, 4, "")
	f.pickSalt(fleetStages(), 2, 1, 1)
	first := f.devicesIn(0)
	bad, good := f.devices[first[0]], f.devices[first[1]]
	f.writeConfig(bad, failV2) // v2 fails its health check on this one device only
	conf, url := f.controllerConfig("")
	c := startController(t, conf, url)
	c.waitReady(20 * time.Second)
	f.startAll()
	c.waitDevices(4)
	// Two failures allowed and half the stage enough: the rollout keeps
	// running at its first stage, soaking, with one failure to show.
	f.create(c, "1h", "--success", "50", "--max-failures", "2")
	f.waitStory(first[0], failedV2)
	f.waitStory(first[1], goodV2)
	var s fleet.Status
	testutil.WaitFor(t, 30*time.Second, "the controller to count the first stage", func() bool {
		s = c.status("r1")
		return s.Failed == 1 && s.Succeeded == 1
	})

	browsertest.Login(t, ctx, url, apiToken)
	browsertest.Do(t, ctx, "the rollout on the page", chromedp.WaitVisible(chromedp.CSS(`[data-rollout="r1"] button.act-pause`)))
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[shown](readOverview))
	if err != nil {
		t.Fatal(err)
	}
	s = c.status("r1")
	var devs []store.Device
	if err := c.get("/v1/devices", &devs); err != nil {
		t.Fatal(err)
	}
	check := func(what, got, want string) { // what the page shows against what the API says
		t.Helper()
		if got != want {
			t.Errorf("the page shows %s %q, the API %q", what, got, want)
		}
	}
	check("devices", seen.Devices, fmt.Sprint(len(devs)))
	check("state", seen.State, s.Rollout.State)
	check("stage", seen.Stage, fmt.Sprintf("stage %d of %d", s.Rollout.Stage+1, len(s.Rollout.Stages)))
	check("cohort", seen.Cohort, fmt.Sprint(s.Cohort))
	check("failed", seen.Failed, fmt.Sprint(s.Failed))
	st := s.Stages[0]
	for k, n := range map[string]int{"devices": st.Devices, "succeeded": st.Succeeded, "failed": st.Failed, "in_progress": st.InProgress, "waiting": st.Waiting} {
		check("stage 1 "+k, seen.Stage0[k], fmt.Sprint(n))
	}
	if len(seen.Failures) != len(s.Failures) || len(s.Failures) != 1 {
		t.Errorf("failures by reason: page %v, API %v", seen.Failures, s.Failures)
	}
	for reason, n := range s.Failures {
		check("failures of "+reason, seen.Failures[reason], fmt.Sprint(n))
	}
	byVersion, online := map[string]int{}, 0
	for _, d := range devs {
		byVersion[d.Version]++
		if d.Online {
			online++
		}
		check(d.ID+"'s reason", seen.DeviceReason[d.ID], d.Reason)
		if d.ID == bad.id && (d.Reason != "check_failed" || d.Status != report.StatusRolledBack) {
			t.Errorf("the API has the failed device as %s (%s), want rolled_back (check_failed)", d.Status, d.Reason)
		}
	}
	for v, n := range byVersion {
		check("devices on "+v, seen.ByVersion[v], fmt.Sprint(n))
	}
	if s.Rollout.State != rollout.StateRunning || !seen.PauseButton || seen.Resume {
		t.Fatalf("a running rollout (%s) must offer pause and not resume: pause %v, resume %v", s.Rollout.State, seen.PauseButton, seen.Resume)
	}
	screenshot(t, ctx, "dashboard-rollout-running.png")

	browsertest.Do(t, ctx, "click pause", chromedp.Click(chromedp.CSS(`[data-rollout="r1"] button.act-pause`)))
	if s := c.waitState("r1", rollout.StatePaused, 10*time.Second); s.History[len(s.History)-1].Reason != "paused by a person" {
		t.Fatalf("pause from the page: %+v", s.History)
	}
	browsertest.Do(t, ctx, "the page to offer resume", chromedp.WaitVisible(chromedp.CSS(`[data-rollout="r1"] button.act-resume`)))
	if seen, err = chromedp.Run(ctx, chromedp.Evaluate[shown](readOverview)); err != nil {
		t.Fatal(err)
	}
	if seen.State != rollout.StatePaused || seen.PauseButton {
		t.Fatalf("after the pause the page shows %s, pause offered: %v", seen.State, seen.PauseButton)
	}
	screenshot(t, ctx, "dashboard-rollout-paused.png")

	rollbackFromThePage(t, ctx, f, c, url, good, first[1])
}

// rollbackFromThePage opens device d's page (the token is still in the tab's
// sessionStorage), clicks "roll back", and waits for the agent to be back on
// v1 and the controller and the page to show it.
func rollbackFromThePage(t *testing.T, ctx context.Context, f *testFleet, c *controller, url string, d *fleetDevice, i int) {
	t.Helper()
	browsertest.Do(t, ctx, "roll back from the device page",
		chromedp.Navigate(url+"/ui/devices/"+d.id),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-model="demo"] button.act-rollback`)),
		chromedp.Click(chromedp.CSS(`tr[data-model="demo"] button.act-rollback`)),
	)
	testutil.WaitFor(t, 30*time.Second, d.id+" back on v1", func() bool {
		st := f.devices[i].view().State()
		return st.Slots[st.Active].Version == "v1"
	})
	var dev []store.Device
	testutil.WaitFor(t, 30*time.Second, "the controller to record the rollback", func() bool {
		var all []store.Device
		if c.get("/v1/devices", &all) != nil {
			return false
		}
		for _, x := range all {
			if x.ID == d.id {
				dev = []store.Device{x}
			}
		}
		return len(dev) == 1 && dev[0].Version == "v1" && dev[0].Status == report.StatusRolledBack
	})
	testutil.WaitFor(t, 10*time.Second, "the page to show v1", func() bool {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr[data-model="demo"] [data-k="version"]')?.textContent ?? ""`))
		return err == nil && v == "v1"
	})
	commandShown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll('table.events tr')].some(r => r.textContent.includes('fleet-rollback-'))`))
	if err != nil {
		t.Fatal(err)
	}
	if !commandShown {
		t.Errorf("the device's history does not show the rollback command's answer")
	}
	screenshot(t, ctx, "dashboard-device-rolled-back.png")
}
