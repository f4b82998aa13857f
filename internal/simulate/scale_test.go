package simulate

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelslot/modelslot/internal/browsertest"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/testutil"
)

// TestFleetConvergesThroughStagesAndHaltsABadVersion is the fleet at scale,
// every part real: simulated devices (real agents, slot stores, downloads from
// nginx, an MQTT connection each) on one mosquitto, the controller as the
// `modelslot fleet serve` binary on PostgreSQL with fsync on. A good version
// (v2) goes through three stages to every device; then a bad one (v3, which
// the probe stand-in fails) halts at the first stage, and no device outside
// that stage fetches, installs or reports it. Every event a device queued is
// in the database (none lost). 500 devices in `make test`; `make fleet-bench`
// runs it with MODELSLOT_FLEET_DEVICES=10000 and prints the figures.
func TestFleetConvergesThroughStagesAndHaltsABadVersion(t *testing.T) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("MODELSLOT_FLEET_DEVICES")); err == nil && v > 0 {
		n = v
	}
	s := newStand(t)
	s.publish("v1", "stable")
	good, bad := s.publish("v2", ""), s.publish("v3", "")
	fmt.Printf("fleet scale: controller API http://%s (GET /v1/rollouts, /v1/devices, /metrics), up until the rollouts end\n",
		strings.TrimPrefix(s.ctl.url, "http://"))

	f := s.simulate(t, n)
	m := s.measure(f)
	stages := []rollout.Stage{
		{Share: 500, MinSoak: rollout.Duration(2 * time.Second), Success: 9500, MaxFailures: 1},
		{Share: 3000, MinSoak: rollout.Duration(2 * time.Second), Success: 9500, MaxFailures: 1},
		{Share: 10000, MinSoak: rollout.Duration(2 * time.Second), Success: 9500, MaxFailures: 1},
	}
	s.create(t, "good", good, stages)
	s.screenshotAtStage(t, "good", 2)
	completed := s.waitQuiet(t, f, "v2 on every device and the rollout completed",
		func() bool { return s.ctl.status("good").Rollout.State == rollout.StateCompleted },
		func(sn Snapshot) bool { return sn.On("v2") == n })
	converge := m.end(f)
	converge.decided = completed.Sub(m.start)
	st := s.ctl.status("good")
	fmt.Printf("fleet scale: good rollout: %d succeeded, %d failed, %d revisions; documents refused by devices: %v\n", st.Succeeded, st.Failed, len(st.History), st.Refusals)
	if st.Failed != 0 || st.Succeeded != n || len(st.History) < 3 {
		t.Fatalf("good rollout: %d succeeded, %d failed, %d revisions; want %d, 0, >= 3 (three stages)", st.Succeeded, st.Failed, len(st.History), n)
	}

	m2 := s.measure(f)
	s.create(t, "bad", bad, stages)
	halted := s.waitQuiet(t, f, "the bad rollout halted and every device back on v2",
		func() bool { return s.ctl.status("bad").Rollout.State == rollout.StateHalted },
		func(sn Snapshot) bool { return sn.On("v2") == n })
	halt := m2.end(f)
	halt.decided = halted.Sub(m2.start)
	s.checkHalt(t, f, bad)

	converge.print("good version, 3 stages", "completed", n)
	halt.print("bad version", "halted", n)
	if converge.lost != 0 || halt.lost != 0 {
		t.Fatalf("lost events: %d in the good rollout, %d in the bad one", converge.lost, halt.lost)
	}
}

// perProcess bounds the devices one `fleet simulate` process runs: each holds
// a socket to the broker, and a burst (a new rollout revision saved by every
// device at once) opens two files per device on top; this machine caps a
// process at 20,000 descriptors and grants no CAP_SYS_RESOURCE to raise it.
const perProcess = 4000

// simulate runs n devices as `modelslot fleet simulate` processes of at most
// perProcess devices each, state roots on /dev/shm (a tmpfs), and returns a
// view of all of them (simulate.Open) once the controller knows every one.
func (s *stand) simulate(t *testing.T, n int) *Fleet {
	dir, err := os.MkdirTemp("/dev/shm", "modelslot-sim-") // a tmpfs: see the package doc
	testutil.OK(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	start := time.Now()
	var parts []Options
	for k := 0; k*perProcess < n; k++ {
		o := Options{Devices: min(perProcess, n-k*perProcess), IDPrefix: fmt.Sprintf("sim-%d-", k), StateDir: filepath.Join(dir, fmt.Sprint(k)),
			Broker: s.broker.URL(), Source: s.channel(), Model: "demo", RolloutChannel: "stable",
			TrustedKeys: []string{s.pubKey}, RolloutKeys: []string{s.rolloutPub}, FailVersion: "v3"}
		parts = append(parts, o)
		s.sims = append(s.sims, startSimulator(t, o))
	}
	s.waitQuiet(t, nil, "every device known to the controller", func() bool { return s.knownDevices() == n }, nil)
	fmt.Printf("fleet scale: %d devices in %d fleet simulate processes, seeded with v1 and online in %s\n", n, len(parts), time.Since(start).Round(time.Second))
	view := &Fleet{}
	for _, o := range parts {
		f, err := Open(o)
		testutil.OK(t, err)
		view.devices = append(view.devices, f.devices...)
	}
	return view
}

func (s *stand) knownDevices() int {
	var devs []map[string]any
	if s.ctl.api("GET", "/v1/devices?model=demo", nil, &devs) != nil {
		return -1
	}
	return len(devs)
}

func (s *stand) create(t *testing.T, id, manifest string, stages []rollout.Stage) {
	t.Helper()
	req := fleet.CreateRequest{ID: id, Model: "demo", Channel: "stable", ManifestURL: manifest, Stages: stages, AbortRollback: true}
	if err := s.ctl.api("POST", "/v1/rollouts", req, nil); err != nil {
		t.Fatalf("create rollout %s: %v", id, err)
	}
}

// waitQuiet waits until the controller says done (one API call, cheap), then
// until the devices agree (a snapshot reads 2 files per device, so it is
// taken only then, or every 10 s for the progress line) and every event they
// queued is delivered and recorded. It returns when done first held.
func (s *stand) waitQuiet(t *testing.T, f *Fleet, what string, done func() bool, cond func(Snapshot) bool) time.Time {
	t.Helper()
	limit := 15 * time.Minute
	deadline, next := time.Now().Add(limit), time.Now()
	var doneAt time.Time
	for {
		if doneAt.IsZero() && done() {
			doneAt = time.Now()
		}
		s.checkSimulators(t)
		if f == nil { // no view yet: the controller's word alone
			if !doneAt.IsZero() {
				return doneAt
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s, still waiting for %s\ncontroller log:\n%s", limit, what, s.ctl.logText())
			}
			time.Sleep(2 * time.Second)
			continue
		}
		if !doneAt.IsZero() || time.Now().After(next) {
			sn := f.Snapshot()
			produced, undelivered := sn.Events()
			if !doneAt.IsZero() && cond(sn) && undelivered == 0 && s.ctl.ingestedAll(produced) {
				return doneAt
			}
			fmt.Printf("fleet scale: %s | events %d queued, %d undelivered, %d recorded\n",
				sn, produced, undelivered, s.ctl.ingested())
			next = time.Now().Add(progressEvery(len(f.Devices())))
			if time.Now().After(deadline) {
				t.Fatalf("after %s, still waiting for %s: %s; events %d queued, %d undelivered, %d recorded\ncontroller log:\n%s",
					limit, what, sn, produced, undelivered, s.ctl.ingested(), s.ctl.logText())
			}
		}
		time.Sleep(2 * time.Second)
	}
}

// progressEvery: a snapshot of ten thousand devices costs seconds of CPU.
func progressEvery(devices int) time.Duration {
	return time.Duration(max(10, devices/500)) * time.Second
}

// ingestedAll: the controller has recorded at least produced events (the
// dedupe by event_id makes more impossible; fewer means still in flight).
func (c *controllerProc) ingestedAll(produced int) bool { return c.ingested() >= int64(produced) }

// checkHalt: the bad rollout stopped in its first stage; every device that
// fetched, ran, failed or reported v3 is in that stage, and v3's manifest was
// fetched by no more devices than the stage holds.
func (s *stand) checkHalt(t *testing.T, f *Fleet, manifest string) {
	t.Helper()
	st := s.ctl.status("bad")
	r := st.Rollout
	if r.Stage != 0 || st.Failed == 0 || st.Failures["probe_mismatch"] == 0 {
		t.Fatalf("bad rollout: stage %d, %d failed (%v); want stage 0 with probe_mismatch failures", r.Stage, st.Failed, st.Failures)
	}
	inStage := 0
	for _, d := range f.Devices() {
		if r.StageOf(d.ID) == 0 {
			inStage++
		}
	}
	reported := s.devicesWith("v3")
	for _, d := range f.Snapshot().Devices {
		touched := d.Failed == "v3" || reported[d.ID] || strings.Contains(strings.Join(d.Versions, " "), "v3")
		if touched && r.StageOf(d.ID) != 0 {
			t.Errorf("device %s is in stage %d but touched v3: slots %v, last failure %q, events %v", d.ID, r.StageOf(d.ID), d.Versions, d.Failed, reported[d.ID])
		}
	}
	gets := 0
	for _, req := range s.web.Requests() {
		if req.Path == strings.TrimPrefix(manifest, s.web.URL) && req.UserAgent != fleet.UserAgent {
			gets++
		}
	}
	if gets == 0 || gets > inStage {
		t.Errorf("v3's manifest fetched %d times by devices; want between 1 and the %d devices of stage 0", gets, inStage)
	}
	fmt.Printf("fleet scale: bad rollout halted at stage 0 (%d devices): %d failed, %d fetched v3's manifest, none outside it; documents refused by devices: %v\n",
		inStage, st.Failed, gets, st.Refusals)
}

// screenshotAtStage, when MODELSLOT_FLEET_SCREENSHOT names a PNG file, waits
// until rollout id has reached stage (counted from 0), logs in to the
// controller's dashboard in a real headless Chromium and writes the page
// there: the picture of the fleet mid-rollout that docs/ and README.md show.
// It runs on the test's goroutine before the convergence wait, so a rollout
// that completes meanwhile is timed a few seconds late in that run only.
func (s *stand) screenshotAtStage(t *testing.T, id string, stage int) {
	t.Helper()
	path := os.Getenv("MODELSLOT_FLEET_SCREENSHOT")
	if path == "" {
		return
	}
	ctx := browsertest.Start(t)
	testutil.WaitFor(t, 15*time.Minute, fmt.Sprintf("rollout %s at stage %d", id, stage), func() bool {
		st := s.ctl.status(id)
		return st.Rollout.Stage >= stage || st.Rollout.State == rollout.StateCompleted
	})
	browsertest.Login(t, ctx, s.ctl.url, apiToken)
	browsertest.Do(t, ctx, "the rollout on the dashboard", chromedp.WaitVisible(chromedp.CSS(`[data-rollout="`+id+`"]`)))
	time.Sleep(3 * time.Second) // a poll or two, so the counts are the stage's, not the first paint's
	browsertest.Screenshot(t, ctx, path)
}
