package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/testutil"
)

// platform is the remote side: a real mosquitto and a real HTTP collector.
type platform struct {
	broker  *mqtttest.Broker
	events  *mqtttest.Subscriber // nil until subscribed
	httpMu  sync.Mutex
	httpEvs []report.Event
	httpURL string
	metrics string
}

func newPlatform(t *testing.T, startBroker bool) *platform {
	p := &platform{broker: mqtttest.New(t), metrics: freeAddr(t)}
	if startBroker {
		p.broker.Start()
		p.subscribe(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev report.Event
		if json.NewDecoder(r.Body).Decode(&ev) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		p.httpMu.Lock()
		p.httpEvs = append(p.httpEvs, ev)
		p.httpMu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.httpURL = "http://" + ln.Addr().String() + "/events"
	return p
}

func (p *platform) subscribe(t *testing.T) {
	p.events = mqtttest.Subscribe(t, p.broker, "modelslot/test-device/events")
}

func (p *platform) conf() string {
	return fmt.Sprintf("[platform]\nmqtt_url = %q\nhttp_url = %q\n[agent]\nmetrics_addr = %q\nheartbeat = \"1s\"\n",
		p.broker.URL(), p.httpURL, p.metrics)
}

// mqttEvents decodes what the platform received over MQTT.
func (p *platform) mqttEvents(t *testing.T) []report.Event {
	var evs []report.Event
	for _, m := range p.events.Messages() {
		var ev report.Event
		if err := json.Unmarshal(m, &ev); err != nil {
			t.Fatalf("event is not JSON: %s", m)
		}
		evs = append(evs, ev)
	}
	return evs
}

func (p *platform) httpEvents() []report.Event {
	p.httpMu.Lock()
	defer p.httpMu.Unlock()
	return append([]report.Event(nil), p.httpEvs...)
}

// story returns "version:status" of distinct events in order, and fails on a
// duplicate whose content differs or an event that arrives out of order.
func story(t *testing.T, evs []report.Event) string {
	t.Helper()
	seen := map[string]report.Event{}
	var out []string
	var last uint64
	for _, ev := range evs {
		if prev, dup := seen[ev.EventID]; dup {
			if prev.Sequence != ev.Sequence || prev.Status != ev.Status {
				t.Fatalf("event_id %s delivered twice with different content", ev.EventID)
			}
			continue
		}
		if ev.Sequence <= last {
			t.Fatalf("event %d arrived after %d", ev.Sequence, last)
		}
		last = ev.Sequence
		seen[ev.EventID] = ev
		out = append(out, ev.TargetVersion+":"+ev.Status)
	}
	return strings.Join(out, " ")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAgent runs `modelslot agent` as a real process and waits until it serves.
func (e *env) startAgent(extraEnv ...string) *exec.Cmd {
	e.t.Helper()
	cmd := e.command(extraEnv, "agent")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "agent running") {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		e.t.Fatal("agent did not start")
	}
	e.t.Cleanup(func() { stopAgent(cmd) })
	return cmd
}

// startAgentOnline starts the agent and waits until the platform sees it
// online (its retained status), so commands published next reach it.
func (e *env) startAgentOnline(p *platform) *exec.Cmd {
	e.t.Helper()
	status := mqtttest.Subscribe(e.t, p.broker, "modelslot/test-device/status")
	cmd := e.startAgent()
	testutil.WaitFor(e.t, 10*time.Second, "the agent online on MQTT", func() bool {
		for _, m := range status.Messages() {
			if strings.Contains(string(m), `"state":"online"`) {
				return true
			}
		}
		return false
	})
	return cmd
}

func stopAgent(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

const goodUpdates = "v1:installing v1:activating v1:confirming v1:success v2:installing v2:activating v2:confirming v2:success"

func TestAgentDeliversEveryStepInOrderToMQTTAndHTTP(t *testing.T) {
	p := newPlatform(t, true)
	e := newEnv(t)
	e.extraConf = p.conf()
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	e.startAgent()
	installBoth(e, m1, m2)
	testutil.WaitFor(t, 20*time.Second, "8 events on MQTT", func() bool { return len(p.events.Messages()) >= 8 })
	testutil.WaitFor(t, 20*time.Second, "8 events over HTTP", func() bool { return len(p.httpEvents()) >= 8 })
	if got := story(t, p.mqttEvents(t)); got != goodUpdates {
		t.Fatalf("MQTT story:\n got %s\nwant %s", got, goodUpdates)
	}
	if got := story(t, p.httpEvents()); got != goodUpdates {
		t.Fatalf("HTTP story:\n got %s\nwant %s", got, goodUpdates)
	}
}

// TestAgentDeliversAfterBrokerOutage: the broker is down for the whole update
// (and a failed one); once it is back, every event arrives, in order.
func TestAgentDeliversAfterBrokerOutage(t *testing.T) {
	p := newPlatform(t, false)
	e := newEnv(t)
	e.extraConf = p.conf() + failV2
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	e.startAgent()
	installV1(e, m1, m2)
	e.must(exitRolledBack, installV2(m1, m2)...)
	time.Sleep(500 * time.Millisecond)
	p.broker.Start()
	p.subscribe(t) // persistent session of the agent is new: subscribe before it reconnects
	want := "v1:installing v1:activating v1:confirming v1:success v2:installing v2:activating v2:confirming v2:rolling_back v2:rolled_back"
	testutil.WaitFor(t, 45*time.Second, "9 events after the outage", func() bool { return len(p.events.Messages()) >= 9 })
	if got := story(t, p.mqttEvents(t)); got != want {
		t.Fatalf("story:\n got %s\nwant %s", got, want)
	}
}

// TestAgentKilledAfterSendRedeliversWithSameIDs: SIGKILL between the broker's
// acknowledgement and the outbox's; the restarted agent sends those events
// again with the same event_id, and none is lost.
func TestAgentKilledAfterSendRedeliversWithSameIDs(t *testing.T) {
	p := newPlatform(t, true)
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("[platform]\nmqtt_url = %q\n", p.broker.URL())
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installBoth(e, m1, m2) // events queued while no agent runs
	a := e.startAgent(crashpointEnv("agent.drain-after-send"))
	a.Wait()
	if ws := a.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("agent was not killed at its crash point: %v", a.ProcessState)
	}
	testutil.WaitFor(t, 10*time.Second, "the first batch", func() bool { return len(p.events.Messages()) >= 8 })
	e.startAgent()
	testutil.WaitFor(t, 20*time.Second, "the redelivered batch", func() bool { return len(p.events.Messages()) >= 16 })
	if got := story(t, p.mqttEvents(t)); got != goodUpdates { // story fails on a changed duplicate
		t.Fatalf("story:\n got %s\nwant %s", got, goodUpdates)
	}
}

// TestRollbackCommandRunsOnceAndIsReported: the platform orders a rollback and
// the broker delivers it twice; the device rolls back once and says so.
func TestRollbackCommandRunsOnceAndIsReported(t *testing.T) {
	p := newPlatform(t, true)
	e := newEnv(t)
	e.extraConf = p.conf()
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installBoth(e, m1, m2)
	e.startAgentOnline(p)
	c := mqtttest.Connect(t, p.broker, "platform-pub")
	cmd := []byte(`{"id": "cmd-1", "action": "rollback", "model": "demo"}`)
	mqtttest.Publish(t, c, "modelslot/test-device/commands", cmd)
	mqtttest.Publish(t, c, "modelslot/test-device/commands", cmd)
	want := goodUpdates + " v1:rolling_back v1:rolled_back"
	testutil.WaitFor(t, 20*time.Second, "the rollback's events", func() bool { return story(t, p.mqttEvents(t)) == want })
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q after the rollback command", got)
	}
	testutil.WaitFor(t, 10*time.Second, "metrics to count one rollback command", func() bool {
		m := scrape(t, p.metrics)
		return strings.Contains(m, `modelslot_commands_total{action="rollback",result="ok"} 1`) &&
			strings.Contains(m, `modelslot_manual_rollbacks_total{model="demo"} 1`) &&
			strings.Contains(m, `modelslot_updates_total{model="demo",result="rolled_back"} 0`) &&
			strings.Contains(m, `modelslot_active_version_info{model="demo",slot="a",trial="false",version="v1"} 1`)
	})
	time.Sleep(500 * time.Millisecond) // a second run, if the dedupe failed, would show now
	if m := scrape(t, p.metrics); !strings.Contains(m, `action="rollback",result="failed"} 0`) || !strings.Contains(m, `action="rollback",result="ok"} 1`) {
		t.Fatalf("the repeated command ran again:\n%s", m)
	}
}

func scrape(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestAgentFollowsChannelAndReportsTheWholeUpdate: the agent polls the model's
// channel, installs the new version it points at (download, install, activate,
// confirm), reports every step in order, and counts the bytes it downloaded.
func TestAgentFollowsChannelAndReportsTheWholeUpdate(t *testing.T) {
	p := newPlatform(t, true)
	r := newRepoServer(t)
	e := repoEnv(t, r) // v1 installed by hand from the repository
	e.extraConf += fmt.Sprintf("source = %q\n", r.channel()) + p.conf() + "channel_poll = \"200ms\"\n"
	e.writeConfig()
	e.startAgent()
	r.publish(makeModel(t, 200<<10, 7000), "v2")
	want := "v1:downloading v1:installing v1:activating v1:confirming v1:success " +
		"v2:downloading v2:installing v2:activating v2:confirming v2:success"
	testutil.WaitFor(t, 30*time.Second, "the update's events", func() bool { return story(t, p.mqttEvents(t)) == want })
	if got := e.checkInvariants(); got != "v2" {
		t.Fatalf("active %q, want v2", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the download counted", func() bool {
		return strings.Contains(scrape(t, p.metrics), `modelslot_download_bytes_total{model="demo"}`) &&
			!strings.Contains(scrape(t, p.metrics), `modelslot_download_bytes_total{model="demo"} 0`)
	})
	time.Sleep(time.Second) // more polls of the same pointer must not install again
	if got := story(t, p.mqttEvents(t)); got != want {
		t.Fatalf("events after more polls:\n got %s\nwant %s", got, want)
	}
}

// TestAgentKilledMidUpdateLosesNoEvent: the agent is killed with SIGKILL in the
// middle of an update it runs (its trial has started); the restarted agent
// finishes the update, and the platform gets every step, in order, with
// redeliveries carrying the same event_id.
func TestAgentKilledMidUpdateLosesNoEvent(t *testing.T) {
	p := newPlatform(t, true)
	r := newRepoServer(t)
	e := repoEnv(t, r)
	e.extraConf += fmt.Sprintf("source = %q\n", r.channel()) + p.conf() + "channel_poll = \"200ms\"\n"
	e.writeConfig()
	r.publish(makeModel(t, 100<<10, 3000), "v2")
	a := e.startAgent(crashpointEnv("trial.before-confirm"))
	a.Wait()
	if ws := a.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the agent was not killed in the update's trial: %v", a.ProcessState)
	}
	e.startAgent()
	want := "v1:downloading v1:installing v1:activating v1:confirming v1:success " +
		"v2:downloading v2:installing v2:activating v2:confirming v2:success"
	testutil.WaitFor(t, 30*time.Second, "every step of both updates", func() bool { return story(t, p.mqttEvents(t)) == want })
	// The steps before the kill and the resumed ones after it all belong to
	// the one command that ordered the update.
	cmd := ""
	for _, ev := range p.mqttEvents(t) {
		if ev.TargetVersion != "v2" {
			continue
		}
		if ev.CommandID == "" || (cmd != "" && ev.CommandID != cmd) {
			t.Fatalf("v2 %s carries command_id %q, want the one command's (%q)", ev.Status, ev.CommandID, cmd)
		}
		cmd = ev.CommandID
	}
	if got := e.checkInvariants(); got != "v2" {
		t.Fatalf("active %q, want v2", got)
	}
}
