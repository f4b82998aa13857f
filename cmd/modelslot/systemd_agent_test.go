package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// The packaged modelslot-agent.service (Type=notify, hardened, state and link
// directories writable, everything else read-only) under a real manager: a
// trial that a killed modelslot left pending is resumed by the agent at start
// and committed before it says READY=1.
func TestSystemdAgentUnitResumesTrialAtStart(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{})
	d.install(0, "v1")
	if fired, r := d.crashAt(trialPoint, "install", "--insecure", "--label", "v2", modelDir("v2")); !fired {
		t.Fatalf("crash point %s did not fire: %v", trialPoint, r)
	}
	subst := strings.NewReplacer("/usr/bin/modelslot ", binary+" ", "/etc/modelslot/modelslot.toml", d.config)
	d.writeUnitFile(t, "modelslot-agent.service", subst.Replace(readFile(filepath.Join("..", "..", "packaging", "systemd", "modelslot-agent.service"))))
	// The state root and the link directory in place of StateDirectory=, as
	// the unit's comment says for a link outside the state root (see
	// unitPaths and installUnits); the rest of the hardening applies.
	d.writeUnitFile(t, "modelslot-agent.service.d/test.conf", "[Service]\n"+d.unitPaths()+
		"StandardOutput=append:"+d.log+"\nStandardError=append:"+d.log+"\n")
	d.m.DaemonReload(t)
	start := time.Now()
	if out, err := d.m.Systemctl("start", "modelslot-agent.service"); err != nil { // returns after READY=1
		status, _ := d.m.Systemctl("status", "--no-pager", "modelslot-agent.service")
		t.Fatalf("%v\n%s\n%s", err, out, status)
	}
	t.Logf("agent ready after resuming the trial: %s", time.Since(start).Round(time.Millisecond))
	st := d.view().State()
	if st.Trial != nil || st.Slots[st.Active].Version != "v2" || st.Slots[st.Active].Status != "good" {
		t.Fatalf("the agent was ready before it concluded the trial: %+v", st)
	}
	if got := d.m.Show(t, "modelslot-agent.service", "ActiveState"); got != "active" {
		t.Fatalf("modelslot-agent.service is %s", got)
	}
	d.systemctl(t, "stop", "modelslot-agent.service")
	d.agree("v2")
}

// The agent's rollback command reaches the server: rolled_back is reported
// only once v1 answers. When the unit cannot bring v1 up (every start fails),
// the agent says so (failed), keeps the restore pending and retries it with
// backoff; once the unit can start again, v1 serves and rolled_back follows.
func TestSystemdAgentRollbackCommandReachesTheServerAndIsRetried(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, true)
	d := newSDDevice(t, sdOptions{startTimeout: 3 * time.Second})
	d.install(0, "v1")
	d.install(0, "v2")
	d.extraConf += p.conf()
	d.writeConfig()
	agent := d.startAgent()
	c := mqtttest.Connect(t, p.broker, "platform-pub")

	// Every start of the unit fails from now on.
	d.writeUnitFile(t, demoUnit+".d/broken.conf", "[Service]\nExecStartPre=/bin/false\n")
	d.m.DaemonReload(t)
	mqtttest.Publish(t, c, "modelslot/test-device/commands", []byte(`{"id": "cmd-1", "action": "rollback", "model": "demo"}`))
	testutil.WaitFor(t, 60*time.Second, "the failed restore reported", func() bool {
		return strings.HasSuffix(story(t, p.mqttEvents(t)), "v1:rolling_back v1:failed")
	})
	if st := d.view().State(); st.Restore == nil || st.Slots[st.Active].Version != "v1" {
		t.Fatalf("the restore must stay pending with the link on v1: %+v", st)
	}
	if got := d.servedNow(); got == "v1" {
		t.Fatalf("v1 answers although every start fails: the test shows nothing")
	}

	// The unit can start again: the agent's retry brings v1 up.
	os.Remove(filepath.Join(d.m.UnitDir, demoUnit+".d", "broken.conf"))
	d.m.DaemonReload(t)
	var servedAtReport string
	testutil.WaitFor(t, 90*time.Second, "the retried restore reported", func() bool {
		s := story(t, p.mqttEvents(t))
		if strings.HasSuffix(s, "v1:rolled_back") {
			servedAtReport = d.servedNow()
			return true
		}
		return false
	})
	if servedAtReport != "v1" {
		t.Fatalf("rolled_back was reported while the server answered %q", servedAtReport)
	}
	stopAgent(agent)
	d.agree("v1")
}
