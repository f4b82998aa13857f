package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/verify"
)

// testFleet is a real broker, a real repository on loopback and n real devices,
// each its own state root, config and (once started) agent process, all on v1
// installed from the repository. The test plays the controller: it signs
// rollout documents with its rollout key and publishes them retained.
type testFleet struct {
	t        *testing.T
	broker   *mqtttest.Broker
	repo     *repoServer
	key      *verify.PrivateKey
	keyPub   string
	devices  []*fleetDevice
	pub      mqtt.Client
	events   *fleetEvents
	salt     string
	secure   bool         // TLS broker with passwords and the ACL
	secrets  string       // password files, one per user
	apiToken string       // the controller's API token file
	v2Gets   atomic.Int64 // devices' GETs of v2's manifest: one per device that started it
}

type fleetDevice struct {
	*env
	id string
}

// fleetEvents records every device's events as the platform sees them.
type fleetEvents struct {
	mu  sync.Mutex
	evs []report.Event
}

func (e *fleetEvents) all() []report.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]report.Event(nil), e.evs...)
}

func newFleet(t *testing.T, n int, extraConf string) *testFleet {
	t.Helper()
	return newFleetOn(t, n, extraConf, false)
}

// newSecureFleet is newFleet on a TLS broker with passwords and the ACL of
// packaging/mosquitto: each device logs in as its device_id, the controller
// (and the test playing it) as fleet-controller.
func newSecureFleet(t *testing.T, n int, extraConf string) *testFleet {
	t.Helper()
	return newFleetOn(t, n, extraConf, true)
}

func newFleetOn(t *testing.T, n int, extraConf string, secure bool) *testFleet {
	t.Helper()
	f := &testFleet{t: t, repo: newRepoServer(t), events: &fleetEvents{}, secure: secure, secrets: t.TempDir()}
	if secure {
		users := map[string]string{controllerUser: "controller-pw"}
		for i := range n {
			users[fmt.Sprintf("dev-%d", i)] = fmt.Sprintf("pw-%d", i)
		}
		for u, pw := range users {
			if err := os.WriteFile(filepath.Join(f.secrets, u), []byte(pw), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		f.broker = secureBroker(t, users)
	} else {
		f.broker = mqtttest.Start(t)
	}
	k, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.key, f.keyPub = k, filepath.Join(t.TempDir(), "rollout")
	if err := verify.WriteKeyPair(f.keyPub, k); err != nil {
		t.Fatal(err)
	}
	f.keyPub += ".pub"
	f.repo.setSpoil(func(_ http.ResponseWriter, req *http.Request) bool {
		if strings.HasSuffix(req.URL.Path, "/manifests/v2.json") && req.UserAgent() != fleet.UserAgent {
			f.v2Gets.Add(1)
		}
		return false
	})
	f.subscribe()
	f.pub = f.connect("controller")
	f.repo.publish(makeModel(t, 20<<10, 3000), "v1")
	for i := range n {
		d := &fleetDevice{env: newEnv(t), id: fmt.Sprintf("dev-%d", i)}
		f.devices = append(f.devices, d)
		f.writeConfig(d, extraConf)
		d.must(0, "install", f.repo.channel())
	}
	f.repo.publish(makeModel(t, 20<<10, 4000), "v2")
	return f
}

// writeConfig: the device follows the rollouts of demo/stable signed by the
// fleet's rollout key, and trusts the repository's publisher key.
func (f *testFleet) writeConfig(d *fleetDevice, extraConf string) {
	conf := fmt.Sprintf("device_id = %q\nstate_root = %q\n\n[[model]]\nname = \"demo\"\nlink = %q\n"+
		"trusted_keys = [%q]\nrollout_channel = \"stable\"\nrollout_keys = [%q]\n%s"+
		"[platform]\nmqtt_url = %q\n%s[agent]\nheartbeat = \"1s\"\n",
		d.id, d.root, d.link, f.repo.pub, f.keyPub, extraConf, f.broker.URL(), f.credentials(d.id))
	if err := os.WriteFile(d.config, []byte(conf), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// controllerUser is the controller's account in the ACL template.
const controllerUser = "fleet-controller"

// credentials are the [platform] lines that log user in on a secure broker
// (a device's username defaults to its device_id).
func (f *testFleet) credentials(user string) string {
	if !f.secure {
		return ""
	}
	conf := fmt.Sprintf("ca_file = %q\npassword_file = %q\n", f.broker.CAFile, filepath.Join(f.secrets, user))
	if user == controllerUser {
		conf += fmt.Sprintf("username = %q\n", user)
	}
	return conf
}

// connect is a client of the test's own, with the controller's rights.
func (f *testFleet) connect(id string) mqtt.Client {
	f.t.Helper()
	if !f.secure {
		return mqtttest.Connect(f.t, f.broker, id)
	}
	pw, _ := os.ReadFile(filepath.Join(f.secrets, controllerUser))
	c, err := mqtttest.ConnectAs(f.t, f.broker, id, controllerUser, string(pw))
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *testFleet) subscribe() {
	c := f.connect("platform")
	tok := c.Subscribe("modelslot/+/events", 1, func(_ mqtt.Client, m mqtt.Message) {
		var ev report.Event
		if json.Unmarshal(m.Payload(), &ev) == nil {
			f.events.mu.Lock()
			f.events.evs = append(f.events.evs, ev)
			f.events.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		f.t.Fatalf("subscribe to the events: %v", tok.Error())
	}
}

// story of one device: "version:status" (or "refused:reason") of its distinct
// events of rollouts, in order.
func (f *testFleet) story(id string) string {
	f.events.mu.Lock()
	defer f.events.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, ev := range f.events.evs {
		if ev.DeviceID != id || seen[ev.EventID] || (ev.RolloutID == "" && ev.Event != report.RolloutEventType) {
			continue
		}
		seen[ev.EventID] = true
		if ev.Status == report.StatusRefused {
			out = append(out, "refused:"+ev.FailureReason)
			continue
		}
		if ev.RolloutID != "r1" {
			f.t.Fatalf("event of %s under rollout %q: %+v", id, ev.RolloutID, ev)
		}
		out = append(out, ev.TargetVersion+":"+ev.Status)
	}
	return strings.Join(out, " ")
}

// pickSalt finds a salt that puts the devices in the stages as counts says
// (devices per stage), so a test with a handful of devices is deterministic.
func (f *testFleet) pickSalt(stages []rollout.Stage, counts ...int) {
	for i := range 100000 {
		r := &rollout.Rollout{Salt: fmt.Sprint("salt-", i), Stages: stages}
		got := make([]int, len(stages))
		for _, d := range f.devices {
			if s := r.StageOf(d.id); s >= 0 {
				got[s]++
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(counts) {
			f.salt = r.Salt
			return
		}
	}
	f.t.Fatalf("no salt puts %d devices in stages as %v", len(f.devices), counts)
}

// stageOf is the stage of device i under the fleet's salt.
func (f *testFleet) stageOf(i int, stages []rollout.Stage) int {
	return (&rollout.Rollout{Salt: f.salt, Stages: stages}).StageOf(f.devices[i].id)
}

func (f *testFleet) doc(rev uint64, state string, stage int, stages []rollout.Stage, change ...func(*rollout.Rollout)) []byte {
	f.t.Helper()
	env, err := os.ReadFile(filepath.Join(f.repo.dir, "demo", "manifests", "v2.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	sum := sha256.Sum256(env)
	now := time.Now().UTC()
	r := &rollout.Rollout{Schema: rollout.Schema, ID: "r1", Revision: rev, Model: "demo", Channel: "stable",
		Target: rollout.Target{Version: "v2", Sequence: 2, ManifestURL: f.repo.url + "/demo/manifests/v2.json",
			ManifestSHA256: hex.EncodeToString(sum[:])},
		Salt: f.salt, Stages: stages, State: state, Stage: stage, AbortRollback: true,
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, c := range change {
		c(r)
	}
	b, err := rollout.Sign(r, f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// publish puts a document on a rollout topic, retained, as the controller does.
func (f *testFleet) publish(topic string, doc []byte) {
	f.t.Helper()
	if tok := f.pub.Publish(topic, 1, true, doc); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		f.t.Fatalf("publish rollout: %v", tok.Error())
	}
}

const stableTopic = "modelslot/rollouts/demo/stable"

func (f *testFleet) startAll() {
	for _, d := range f.devices {
		d.startAgent()
	}
}

// activeVersions lists every device's active version, read as a second
// process would (the agents hold no lock between commands).
func (f *testFleet) activeVersions() string {
	var out []string
	for _, d := range f.devices {
		st := d.view().State()
		out = append(out, st.Slots[st.Active].Version)
	}
	return strings.Join(out, " ")
}
