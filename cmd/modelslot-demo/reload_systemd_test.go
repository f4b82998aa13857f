package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/demobench"
	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// `systemctl reload` (modelslot's activation = "reload") under a real
// manager: a model failing its probe is refused and the unit keeps serving
// the old one; a good model is swapped in, and while it loads and runs its
// probe the unit shows ActiveState=reloading. On systemd 252 the reload job
// itself ends as soon as SIGHUP is sent, so a caller must wait for
// ActiveState=active and the version in StatusText (or ask the server).
func TestSystemdReloadRefusesAWrongModelAndShowsReloadingUntilTheNewOneServes(t *testing.T) {
	m := systemdtest.Start(t)
	dev := variantDevice(t, "slow") // its probe takes 2 s: the reload is long enough to watch
	wrong := filepath.Join(filepath.Dir(dev.A), "wrong")
	if err := demobench.FillSlot(filepath.Join(models, "wrong"), wrong, "v3-wrong", 3); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	unitSpec{link: dev.Link, port: port, restart: "no"}.install(t, m)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)

	reload := func(target string) {
		t.Helper()
		if err := demobench.Swap(dev.Link, target); err != nil {
			t.Fatal(err)
		}
		if out, err := m.Systemctl("reload", "demo.service"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	reload(wrong)
	status := waitProperty(t, m, "StatusText", "reload of v3-wrong failed")
	if !strings.Contains(status, "serving demo v1") || m.Show(t, "demo.service", "ActiveState") != "active" {
		t.Fatalf("after a refused reload: %s, ActiveState %s", status, m.Show(t, "demo.service", "ActiveState"))
	}
	waitHealthy(t, url, "v1")

	reload(dev.B)
	waitProperty(t, m, "ActiveState", "reloading")
	waitHealthy(t, url, "v1") // still v1 while the new model runs its probe
	waitProperty(t, m, "StatusText", "serving demo v3-slow")
	if got := m.Show(t, "demo.service", "ActiveState"); got != "active" {
		t.Errorf("after the reload ActiveState = %s", got)
	}
	waitHealthy(t, url, "v3-slow")
}

// waitProperty polls a property of demo.service until it contains want.
func waitProperty(t *testing.T, m *systemdtest.Manager, prop, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := m.Show(t, "demo.service", prop)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want it to contain %q", prop, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
