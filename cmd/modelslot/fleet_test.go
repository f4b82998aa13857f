package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/pgtest"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/testutil"
)

// Controller tests: `modelslot fleet serve` as a real process over a real
// broker and database (SQLite by default, a throwaway PostgreSQL cluster),
// driving real agents through a rollout created with `modelslot rollout`.

// controller is one `modelslot fleet serve` process.
type controller struct {
	t      *testing.T
	url    string
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    []string
	ready  chan struct{}
	exited chan struct{}
}

// controllerConfig writes a controller config on db ("" for SQLite in its
// state dir) and returns its path and API URL.
func (f *testFleet) controllerConfig(db string) (string, string) {
	dir := f.t.TempDir()
	listen := freeAddr(f.t)
	f.apiToken = filepath.Join(f.secrets, "api-token")
	if err := os.WriteFile(f.apiToken, []byte(apiToken+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	conf := fmt.Sprintf("[platform]\nmqtt_url = %q\n%s[fleet]\nlisten = %q\nstate_dir = %q\nrollout_key = %q\ntick = \"100ms\"\napi_token_file = %q\n",
		f.broker.URL(), f.credentials(controllerUser), listen, filepath.Join(dir, "state"), strings.TrimSuffix(f.keyPub, ".pub")+".key", f.apiToken)
	if db != "" {
		conf += fmt.Sprintf("database = %q\n", db)
	}
	path := filepath.Join(dir, "fleet.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return path, "http://" + listen
}

// startController starts a controller on config; it does not wait for it to
// lead (a second controller on one database stands by).
func startController(t *testing.T, config, url string) *controller {
	t.Helper()
	c := &controller{t: t, url: url, ready: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command(binary, "--config", config, "fleet", "serve")
	stderr, _ := c.cmd.StderrPipe()
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			c.mu.Lock()
			c.log = append(c.log, sc.Text())
			c.mu.Unlock()
			if strings.Contains(sc.Text(), "fleet controller ready") {
				once.Do(func() { close(c.ready) })
			}
		}
		io.Copy(io.Discard, stderr)
		c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *controller) waitReady(d time.Duration) {
	c.t.Helper()
	select {
	case <-c.ready:
	case <-c.exited:
		c.t.Fatalf("controller exited:\n%s", c.logText())
	case <-time.After(d):
		c.t.Fatalf("controller not leading after %s:\n%s", d, c.logText())
	}
}

func (c *controller) logText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

func (c *controller) kill() {
	c.cmd.Process.Kill()
	<-c.exited
}

func (c *controller) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.kill()
	}
}

// apiToken is the controllers' API token in these tests.
const apiToken = "test-api-token"

func (c *controller) get(path string, out any) error {
	req, err := http.NewRequest("GET", c.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *controller) status(id string) fleet.Status {
	c.t.Helper()
	var s fleet.Status
	if err := c.get("/v1/rollouts/"+id, &s); err != nil {
		c.t.Fatalf("rollout status: %v", err)
	}
	return s
}

// waitDevices waits until the controller knows every device on v1.
func (c *controller) waitDevices(n int) {
	testutil.WaitFor(c.t, 30*time.Second, fmt.Sprintf("the controller to know %d devices", n), func() bool {
		var devs []store.Device
		return c.get("/v1/devices?model=demo", &devs) == nil && len(devs) == n
	})
}

func (c *controller) waitState(id, state string, d time.Duration) fleet.Status {
	c.t.Helper()
	var s fleet.Status
	testutil.WaitFor(c.t, d, "rollout "+state, func() bool {
		return c.get("/v1/rollouts/"+id, &s) == nil && s.Rollout.State == state
	})
	return s
}

// create runs `modelslot rollout create` against the controller.
func (f *testFleet) create(c *controller, soak string, extra ...string) fleet.Status {
	f.t.Helper()
	args := append([]string{"rollout", "create", "--controller", c.url, "--api-token-file", f.apiToken, "--json", "--id", "r1", "--model", "demo",
		"--manifest", f.repo.url + "/demo/manifests/v2.json", "--stages", "25,50,100", "--soak", soak,
		"--success", "100", "--max-failures", "1", "--salt", f.salt}, extra...)
	r := f.devices[0].must(0, args...)
	var s fleet.Status
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		f.t.Fatalf("rollout create --json: %v\n%s", err, r.stdout)
	}
	return s
}

// checkStages: the rollout opened stages 0, 1, 2 in order, each once, each
// only after the previous one's soak and after every device of it succeeded.
func checkStages(t *testing.T, s fleet.Status, soak time.Duration, stageOf func(id string) int) {
	t.Helper()
	opened := []time.Time{}
	for _, h := range s.History {
		if h.Stage == len(opened) {
			opened = append(opened, h.At)
		} else if h.Stage != len(opened)-1 {
			t.Fatalf("history jumps to stage %d after %d stages opened: %+v", h.Stage, len(opened), s.History)
		}
	}
	if len(opened) != 3 {
		t.Fatalf("%d stages opened, want 3: %+v", len(opened), s.History)
	}
	for i := 1; i < 3; i++ {
		if gap := opened[i].Sub(opened[i-1]); gap < soak {
			t.Fatalf("stage %d opened %s after stage %d, before its soak of %s", i, gap, i-1, soak)
		}
		for _, o := range s.Outcomes {
			if stageOf(o.DeviceID) == i-1 && (o.Status != store.OutcomeSucceeded || !o.Updated.Before(opened[i])) {
				t.Fatalf("stage %d opened at %s before %s of stage %d succeeded (%+v)", i, opened[i], o.DeviceID, i-1, o)
			}
		}
	}
}

func (f *testFleet) stageOfID(id string) int {
	return (&rollout.Rollout{Salt: f.salt, Stages: fleetStages()}).StageOf(id)
}

// TestControllerRollsAGoodVersionThroughThreeStages (SQLite, the default): the
// rollout created with the CLI reaches every device, stage after stage, each
// only after its soak and its success threshold; the CLI reports it completed.
func TestControllerRollsAGoodVersionThroughThreeStages(t *testing.T) {
	f := newFleet(t, 4, "")
	f.pickSalt(fleetStages(), 1, 1, 2)
	conf, url := f.controllerConfig("")
	c := startController(t, conf, url)
	c.waitReady(20 * time.Second)
	f.startAll()
	c.waitDevices(4)
	if s := f.create(c, "700ms"); s.Rollout.State != rollout.StateRunning || s.Rollout.Stage != 0 || s.Rollout.Target.Version != "v2" {
		t.Fatalf("created: %+v", s.Rollout)
	}
	s := c.waitState("r1", rollout.StateCompleted, 60*time.Second)
	checkStages(t, s, 700*time.Millisecond, f.stageOfID)
	for i := range f.devices {
		f.waitStory(i, goodV2)
	}
	if got := f.activeVersions(); got != "v2 v2 v2 v2" {
		t.Fatalf("active versions %s", got)
	}
	if r := f.devices[0].run(nil, "rollout", "status", "--controller", c.url, "r1"); r.code != exitError || !strings.Contains(r.stderr, "API token") {
		t.Fatalf("rollout status without the token: %v", r)
	}
	r := f.devices[0].must(0, "rollout", "status", "--controller", c.url, "--api-token-file", f.apiToken, "r1")
	if !strings.Contains(r.stdout, "state completed, stage 3 of 3") || !strings.Contains(r.stdout, "succeeded 4, failed 0") {
		t.Fatalf("rollout status:\n%s", r.stdout)
	}
	r = f.devices[0].must(0, "fleet", "devices", "--controller", c.url, "--api-token-file", f.apiToken)
	if strings.Count(r.stdout, " v2 ") != 4 {
		t.Fatalf("fleet devices:\n%s", r.stdout)
	}
}

// TestControllerHaltsAFailingVersionAtTheFirstStage (PostgreSQL): v2 fails its
// health check on the first stage's device; the controller halts the rollout
// with the reason, no device of a later stage ever downloads v2, the failed
// device is back on v1, and the halted state is on /metrics for the alert.
func TestControllerHaltsAFailingVersionAtTheFirstStage(t *testing.T) {
	pg := pgtest.Start(t, true)
	f := newFleet(t, 4, failV2)
	f.pickSalt(fleetStages(), 1, 1, 2)
	conf, url := f.controllerConfig(pg.URL())
	c := startController(t, conf, url)
	c.waitReady(20 * time.Second)
	f.startAll()
	c.waitDevices(4)
	f.create(c, "200ms")
	s := c.waitState("r1", rollout.StateHalted, 60*time.Second)
	if s.Rollout.Stage != 0 || s.Failed != 1 || s.Failures["check_failed"] != 1 || !strings.Contains(s.Rollout.Reason, "failed") {
		t.Fatalf("halted rollout: stage %d, failed %d, failures %v, reason %q", s.Rollout.Stage, s.Failed, s.Failures, s.Rollout.Reason)
	}
	f.waitStory(f.devicesIn(0)[0], failedV2)
	settle()
	if got := f.v2Gets.Load(); got != 1 {
		t.Fatalf("v2's manifest fetched %d times; only the first stage's device may have", got)
	}
	if got := f.activeVersions(); got != "v1 v1 v1 v1" {
		t.Fatalf("active versions %s", got)
	}
	halted := `modelslot_fleet_rollout_state{channel="stable",model="demo",rollout="r1",state="halted"}`
	if m := scrapeURL(t, c.url); !strings.Contains(m, halted+" 1") ||
		!strings.Contains(m, `modelslot_fleet_rollout_failures{reason="check_failed",rollout="r1"} 1`) {
		t.Fatalf("metrics:\n%s", m)
	}
	alertFires(t, halted, "ModelslotRolloutHalted")
}

// alertFires runs promtool's rule tests: the series the controller exposed,
// held for 5 minutes, must fire alert in packaging/prometheus.
func alertFires(t *testing.T, series, alert string) {
	t.Helper()
	rules, err := filepath.Abs("../../packaging/prometheus/modelslot-fleet-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	test := fmt.Sprintf(`rule_files: [%q]
tests:
  - interval: 1m
    input_series:
      - series: '%s'
        values: '1x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: %s
        exp_alerts:
          - exp_labels: {severity: critical, channel: stable, model: demo, rollout: r1, state: halted}
            exp_annotations:
              summary: "rollout r1 of demo/stable halted"
              description: "modelslot rollout status r1 lists the failures by reason; abort it, fix the version, start a new rollout."
`, rules, series, alert)
	name := filepath.Join(t.TempDir(), "alerts_test.yml")
	if err := os.WriteFile(name, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("promtool", "test", "rules", name).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules (Debian's prometheus package; scripts/ci-setup.sh): %v\n%s", err, out)
	}
}

func scrapeURL(t *testing.T, base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestStandbyTakesOverAKilledControllerWithoutRepeatingAStage (PostgreSQL,
// fsync on): two controllers share one database and only one leads; the
// leader is SIGKILLed in the middle of a stage's soak; the standby takes over
// from the database and finishes the rollout, each stage opened once, in
// order, each after its full soak.
func TestStandbyTakesOverAKilledControllerWithoutRepeatingAStage(t *testing.T) {
	pg := pgtest.Start(t, false)
	f := newFleet(t, 4, "")
	f.pickSalt(fleetStages(), 1, 1, 2)
	confA, urlA := f.controllerConfig(pg.URL())
	confB, urlB := f.controllerConfig(pg.URL())
	a := startController(t, confA, urlA)
	a.waitReady(20 * time.Second)
	b := startController(t, confB, urlB)
	f.startAll()
	a.waitDevices(4)
	select {
	case <-b.ready:
		t.Fatal("two controllers lead one database")
	default:
	}
	const soak = 1500 * time.Millisecond
	f.create(a, soak.String())
	testutil.WaitFor(t, 30*time.Second, "stage 1 opened", func() bool { return a.status("r1").Rollout.Stage == 1 })
	time.Sleep(soak / 3)
	a.kill()
	b.waitReady(30 * time.Second)
	s := b.waitState("r1", rollout.StateCompleted, 60*time.Second)
	checkStages(t, s, soak, f.stageOfID)
	if got := f.activeVersions(); got != "v2 v2 v2 v2" {
		t.Fatalf("active versions %s", got)
	}
}

// TestBrokerDownMidRolloutLosesNoEvent (SQLite): the broker is killed just
// after the rollout starts and comes back empty (no persistence). The first
// stage's device still learns of its stage over HTTP (rollout_url, with ETag)
// and updates while the broker is down; its events wait in its outbox. Once the
// broker is back, the controller publishes its document again, the rollout
// goes on, and in the end every event of every device is in the database, once.
func TestBrokerDownMidRolloutLosesNoEvent(t *testing.T) {
	f := newFleet(t, 4, "")
	f.pickSalt(fleetStages(), 1, 1, 2)
	conf, url := f.controllerConfig("")
	for _, d := range f.devices {
		f.writeConfig(d, fmt.Sprintf("rollout_url = %q\n", url+"/rollouts/demo/stable.json"))
		appendFile(t, d.config, "rollout_poll = \"200ms\"\n")
	}
	c := startController(t, conf, url)
	c.waitReady(20 * time.Second)
	f.startAll()
	c.waitDevices(4)
	f.create(c, "500ms")
	f.broker.Stop()
	first := f.devices[f.devicesIn(0)[0]]
	testutil.WaitFor(t, 30*time.Second, "the first stage's device on v2 while the broker is down", func() bool {
		st := first.view().State()
		return st.Trial == nil && st.Slots[st.Active].Version == "v2"
	})
	if n := c.status("r1").Events; n != 0 {
		t.Fatalf("%d events reached the controller with the broker down", n)
	}
	f.broker.Start()
	c.waitState("r1", rollout.StateCompleted, 90*time.Second)
	testutil.WaitFor(t, 30*time.Second, "every event recorded", func() bool { return c.status("r1").Events >= 20 })
	s := c.status("r1")
	if s.Events != 20 || s.Succeeded != 4 {
		t.Fatalf("%d events of the rollout recorded (want 4 devices × 5 steps = 20), %d succeeded", s.Events, s.Succeeded)
	}
	if got := f.activeVersions(); got != "v2 v2 v2 v2" {
		t.Fatalf("active versions %s", got)
	}
}

func appendFile(t *testing.T, name, text string) {
	fh, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutOverTLSWithTheACL: the same staged rollout on a broker that
// speaks only TLS, checks passwords and applies packaging/mosquitto's ACL; the
// controller logs in with its own account, each agent as its device_id.
func TestRolloutOverTLSWithTheACL(t *testing.T) {
	f := newSecureFleet(t, 2, "")
	stages := fleetStages()
	f.pickSalt(stages, 1, 0, 1)
	conf, url := f.controllerConfig("")
	c := startController(t, conf, url)
	c.waitReady(20 * time.Second)
	f.startAll()
	c.waitDevices(2)
	f.create(c, "300ms")
	s := c.waitState("r1", rollout.StateCompleted, 60*time.Second)
	checkStages(t, s, 300*time.Millisecond, f.stageOfID)
	if got := f.activeVersions(); got != "v2 v2" {
		t.Fatalf("active versions %s", got)
	}
}
