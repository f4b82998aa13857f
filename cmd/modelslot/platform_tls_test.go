package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/testutil"
)

// Tests of the authenticated, encrypted platform connection: a real mosquitto
// with TLS (a CA the test makes), passwords and the ACL of
// packaging/mosquitto/modelslot.acl.

func secureBroker(t *testing.T, users map[string]string) *mqtttest.Broker {
	t.Helper()
	acl, err := os.ReadFile("../../packaging/mosquitto/modelslot.acl")
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.NewSecure(t, mqtttest.Secure{Users: users, ACL: string(acl)})
	b.Start()
	return b
}

// inbox records what a client receives on a topic filter.
type inbox struct{ ch chan string }

func listen(t *testing.T, c mqtt.Client, filter string) *inbox {
	t.Helper()
	in := &inbox{ch: make(chan string, 100)}
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) { in.ch <- m.Topic() + " " + string(m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return in
}

func (in *inbox) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-in.ch:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("did not receive %q", want)
	}
}

func (in *inbox) expectNothing(t *testing.T, what string) {
	t.Helper()
	select {
	case got := <-in.ch:
		t.Fatalf("%s: received %q", what, got)
	case <-time.After(700 * time.Millisecond):
	}
}

func mqttPublish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	c.Publish(topic, 1, false, payload).WaitTimeout(5 * time.Second) // a denied publish is dropped silently (MQTT 3.1.1)
}

// TestBrokerACLKeepsDevicesApart: without credentials, with a wrong password
// or without TLS nobody gets in; with another device's credentials a device can
// neither read nor publish on a device's command topic, nor write its events
// or a rollout document. Each refusal has a positive control beside it.
func TestBrokerACLKeepsDevicesApart(t *testing.T) {
	b := secureBroker(t, map[string]string{"dev-1": "p1", "dev-2": "p2", "fleet-controller": "pc"})
	if _, err := mqtttest.ConnectAs(t, b, "anon", "", ""); err == nil {
		t.Fatal("an anonymous client was let in")
	}
	if _, err := mqtttest.ConnectAs(t, b, "guess", "dev-1", "wrong"); err == nil {
		t.Fatal("a wrong password was let in")
	}
	plain := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", b.Port)).
		SetClientID("plain").SetUsername("dev-1").SetPassword("p1").SetAutoReconnect(false).SetConnectTimeout(3 * time.Second))
	if tok := plain.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		t.Fatal("a client without TLS was let in")
	}
	dev1 := must(mqtttest.ConnectAs(t, b, "dev1", "dev-1", "p1"))
	dev2 := must(mqtttest.ConnectAs(t, b, "dev2", "dev-2", "p2"))
	ctl := must(mqtttest.ConnectAs(t, b, "ctl", "fleet-controller", "pc"))

	own := listen(t, dev1, "modelslot/dev-1/commands")
	spy := listen(t, dev2, "modelslot/dev-1/commands")
	events := listen(t, ctl, "modelslot/+/events")
	rollouts := listen(t, dev1, "modelslot/rollouts/#")

	mqttPublish(t, ctl, "modelslot/dev-1/commands", "c1")
	own.expect(t, "modelslot/dev-1/commands c1")
	spy.expectNothing(t, "dev-2 reading dev-1's commands")

	mqttPublish(t, dev2, "modelslot/dev-1/commands", "forged")
	own.expectNothing(t, "dev-2 publishing a command to dev-1")

	mqttPublish(t, dev2, "modelslot/dev-1/events", "forged")
	events.expectNothing(t, "dev-2 writing dev-1's events")
	mqttPublish(t, dev1, "modelslot/dev-1/events", "e1")
	events.expect(t, "modelslot/dev-1/events e1")

	mqttPublish(t, dev2, "modelslot/rollouts/demo/stable", "forged")
	rollouts.expectNothing(t, "a device publishing a rollout document")
	mqttPublish(t, ctl, "modelslot/rollouts/demo/stable", "doc")
	rollouts.expect(t, "modelslot/rollouts/demo/stable doc")
}

func must(c mqtt.Client, err error) mqtt.Client {
	if err != nil {
		panic(err)
	}
	return c
}

// TestAgentOverMQTTSWithAPasswordFile: a real agent reaches the TLS broker as
// its device_id with the password from its file, delivers its events to the
// controller's account, carries out the controller's command, and never
// prints the password.
func TestAgentOverMQTTSWithAPasswordFile(t *testing.T) {
	const secret = "s3cret-pw"
	b := secureBroker(t, map[string]string{"test-device": secret, "fleet-controller": "pc"})
	ctl := must(mqtttest.ConnectAs(t, b, "ctl", "fleet-controller", "pc"))
	events := listen(t, ctl, "modelslot/test-device/events")
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("[platform]\nmqtt_url = %q\nca_file = %q\npassword_file = %q\n[agent]\nheartbeat = \"1s\"\n", b.URL(), b.CAFile, pw)
	e.writeConfig()
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installBoth(e, m1, m2)
	a := e.command(nil, "agent")
	var stderr strings.Builder
	a.Stderr = &stderr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAgent(a) })
	var got []string
	for len(got) < 8 {
		select {
		case m := <-events.ch:
			var ev report.Event
			json.Unmarshal([]byte(strings.TrimPrefix(m, "modelslot/test-device/events ")), &ev)
			got = append(got, ev.TargetVersion+":"+ev.Status)
		case <-time.After(20 * time.Second):
			t.Fatalf("events over mqtts: %v\nagent log:\n%s", got, stderr.String())
		}
	}
	mqttPublish(t, ctl, "modelslot/test-device/commands", `{"id": "cmd-1", "action": "rollback", "model": "demo"}`)
	testutil.WaitFor(t, 20*time.Second, "the rollback ordered over mqtts", func() bool {
		st := e.view().State()
		return st.Slots[st.Active].Version == "v1"
	})
	stopAgent(a)
	if strings.Contains(stderr.String(), secret) {
		t.Fatalf("the agent printed its password:\n%s", stderr.String())
	}
}

// TestBadMQTTURLIsAConfigError: a scheme other than mqtt:// or mqtts:// is a
// config error (exit 2), and the password in the URL is not printed.
func TestBadMQTTURLIsAConfigError(t *testing.T) {
	e := newEnv(t)
	e.extraConf = "[platform]\nmqtt_url = \"http://dev:s3cret@127.0.0.1:1883\"\n"
	e.writeConfig()
	r := e.run(nil, "status")
	if r.code != exitUsage || !strings.Contains(r.stderr, "mqtt_url") || strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("status with a bad mqtt_url: %v", r)
	}
}

// TestAgentOverMQTTSWithAClientCertificate: the broker checks client
// certificates and takes the certificate's name as the username the ACL
// matches; a client without one is refused, and a real agent with its
// cert_file and key_file delivers its events.
func TestAgentOverMQTTSWithAClientCertificate(t *testing.T) {
	acl, err := os.ReadFile("../../packaging/mosquitto/modelslot.acl")
	if err != nil {
		t.Fatal(err)
	}
	b := mqtttest.NewSecure(t, mqtttest.Secure{ACL: string(acl), CertUsers: []string{"test-device", "fleet-controller", "dev-2"}})
	b.Start()
	if _, err := mqtttest.ConnectWithCert(t, b, "nocert", ""); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	ctl := must(mqtttest.ConnectWithCert(t, b, "ctl", "fleet-controller"))
	events := listen(t, ctl, "modelslot/test-device/events")
	other := must(mqtttest.ConnectWithCert(t, b, "dev2", "dev-2"))
	mqttPublish(t, other, "modelslot/test-device/events", "forged")
	events.expectNothing(t, "dev-2's certificate writing test-device's events")
	cert, key := b.ClientCert("test-device")
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("[platform]\nmqtt_url = %q\nca_file = %q\ncert_file = %q\nkey_file = %q\n", b.URL(), b.CAFile, cert, key)
	e.writeConfig()
	installBoth(e, makeModel(t, 100), makeModel(t, 200))
	e.startAgent()
	for range 8 {
		select {
		case m := <-events.ch:
			if !strings.Contains(m, `"device_id":"test-device"`) {
				t.Fatalf("event %s", m)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no events from the agent with a client certificate")
		}
	}
}
