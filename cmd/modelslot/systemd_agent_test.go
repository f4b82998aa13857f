package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
