package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/testutil"
)

// TestRefusedCommandsAreAnsweredAndNeverRun: a FIFO, a missing path and
// /etc/shadow as an install's source, an unknown action, malformed JSON and a
// 1 MiB payload are each answered with one rejected event and never run (a
// FIFO source used to wedge the worker); the rollback command after them runs
// and is answered too.
func TestRefusedCommandsAreAnsweredAndNeverRun(t *testing.T) {
	p := newPlatform(t, true)
	e := newEnv(t)
	bundles := t.TempDir()
	fifo := filepath.Join(bundles, "stuck.bundle")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	e.extraConf = p.conf() + fmt.Sprintf("bundle_dir = %q\n", bundles)
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installBoth(e, m1, m2)
	e.startAgentOnline(p)
	c := mqtttest.Connect(t, p.broker, "platform-pub")
	refused := []struct{ id, payload string }{
		{"fifo", `{"id":"fifo","action":"install","model":"demo","source":"` + fifo + `"}`},
		{"missing", `{"id":"missing","action":"install","model":"demo","source":"` + bundles + `/gone.bundle"}`},
		{"shadow", `{"id":"shadow","action":"install","model":"demo","source":"/etc/shadow"}`},
		{"unknown", `{"id":"unknown","action":"format-disk","model":"demo"}`},
		{"", `{"id":"broken","action":`},
		{"", `{"id":"huge","action":"rollback","model":"demo","pad":"` + strings.Repeat("x", 1<<20) + `"}`},
	}
	for _, r := range refused {
		mqtttest.Publish(t, c, "modelslot/test-device/commands", []byte(r.payload))
	}
	mqtttest.Publish(t, c, "modelslot/test-device/commands", []byte(`{"id":"rb","action":"rollback","model":"demo"}`))
	want := goodUpdates + strings.Repeat(" :rejected", len(refused)) + " v1:rolling_back v1:rolled_back"
	testutil.WaitFor(t, 30*time.Second, "every command answered", func() bool { return story(t, p.mqttEvents(t)) == want })
	var rejected, rollback []report.Event
	for _, ev := range p.mqttEvents(t) {
		switch {
		case ev.Status == report.StatusRejected:
			rejected = append(rejected, ev)
		case ev.Status == report.StatusRollingBack || ev.Status == report.StatusRolledBack:
			rollback = append(rollback, ev)
		}
	}
	for i, r := range refused {
		ev := rejected[i]
		if ev.CommandID != r.id || ev.FailureReason != "invalid_command" || len(ev.Logs) != 1 || ev.Logs[0] == "" || ev.DeviceID != "test-device" ||
			(ev.Model == "demo" && ev.CurrentVersion != "v2") {
			t.Errorf("answer to %q: %+v", r.id, ev)
		}
	}
	for _, ev := range rollback {
		if ev.CommandID != "rb" {
			t.Errorf("rollback event without the command's id: %+v", ev)
		}
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q after the rollback command", got)
	}
	testutil.WaitFor(t, 10*time.Second, "metrics to count the refusals apart", func() bool {
		m := scrape(t, p.metrics)
		return strings.Contains(m, `modelslot_commands_total{action="install",result="rejected"} 3`) &&
			strings.Contains(m, `modelslot_commands_total{action="unknown",result="rejected"} 3`) &&
			strings.Contains(m, `modelslot_commands_total{action="rollback",result="ok"} 1`) &&
			!strings.Contains(m, `modelslot_updates_total{model="demo",result="rejected"}`)
	})
	// A command for a model the device does not have is answered too, through
	// the device's own outbox, and the served version is untouched.
	mqtttest.Publish(t, c, "modelslot/test-device/commands", []byte(`{"id":"nosuch","action":"rollback","model":"nosuch"}`))
	testutil.WaitFor(t, 30*time.Second, "the answer to a command for another model", func() bool {
		for _, ev := range p.mqttEvents(t) {
			if ev.CommandID == "nosuch" {
				return ev.Status == report.StatusRejected && ev.Model == "nosuch" && ev.FailureReason == "invalid_command"
			}
		}
		return false
	})
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q after a command for another model", got)
	}
}

// statusDoc is the retained status document as the platform reads it.
type statusDoc struct {
	State     string    `json:"state"`
	DeviceID  string    `json:"device_id"`
	Timestamp time.Time `json:"timestamp"`
	Models    []struct {
		Model           string `json:"model"`
		ActiveVersion   string `json:"active_version"`
		PreviousVersion string `json:"previous_version"`
		Trial           string `json:"trial"`
	} `json:"models"`
}

// TestRetainedStatusListsModelsAndTheWillIsValid: the retained status names
// each model's active and previous version; when the agent is killed
// (SIGKILL, no goodbye) the broker's last will is a valid offline document
// with a real timestamp — of the last reconnection — and the same models.
func TestRetainedStatusListsModelsAndTheWillIsValid(t *testing.T) {
	p := newPlatform(t, true)
	e := newEnv(t)
	e.extraConf = p.conf()
	e.writeConfig()
	installBoth(e, makeModel(t, 100), makeModel(t, 200))
	status := mqtttest.Subscribe(t, p.broker, "modelslot/test-device/status")
	started := time.Now().Add(-time.Second)
	a := e.startAgent()
	last := func(state string) (statusDoc, bool) {
		var doc statusDoc
		msgs := status.Messages()
		if len(msgs) == 0 {
			return doc, false
		}
		if err := json.Unmarshal(msgs[len(msgs)-1], &doc); err != nil {
			t.Fatalf("status is not JSON: %s", msgs[len(msgs)-1])
		}
		return doc, doc.State == state
	}
	check := func(doc statusDoc) {
		t.Helper()
		if doc.DeviceID != "test-device" || doc.Timestamp.Before(started) || time.Since(doc.Timestamp) > time.Minute ||
			len(doc.Models) != 1 || doc.Models[0].Model != "demo" || doc.Models[0].ActiveVersion != "v2" ||
			doc.Models[0].PreviousVersion != "v1" || doc.Models[0].Trial != "" {
			t.Fatalf("status document %+v", doc)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the online status", func() bool { _, ok := last("online"); return ok })
	doc, _ := last("online")
	check(doc)
	// The broker goes away and comes back: the will the agent leaves on
	// reconnecting carries the time of that connection, not of the first.
	p.broker.Stop()
	time.Sleep(1500 * time.Millisecond)
	started = time.Now()
	p.broker.Start()
	status = mqtttest.Subscribe(t, p.broker, "modelslot/test-device/status")
	testutil.WaitFor(t, 40*time.Second, "the online status after the broker came back", func() bool { _, ok := last("online"); return ok })
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	testutil.WaitFor(t, 20*time.Second, "the last will", func() bool { _, ok := last("offline"); return ok })
	doc, _ = last("offline")
	check(doc)
}
