package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/modelslot/modelslot/internal/demobench"
	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// demoBinary builds modelslot-demo once per test process.
func demoBinary(t testing.TB) string {
	t.Helper()
	return testutil.Binary(t, "github.com/modelslot/modelslot/cmd/modelslot-demo")
}

// unitSpec is one way of running the demo server under systemd.
type unitSpec struct {
	link     string
	port     int
	socket   bool // socket activation; else --addr
	watchdog time.Duration
	restart  string // Restart=
}

// install writes demo.service (and demo.socket) into m and starts them.
func (u unitSpec) install(t testing.TB, m *systemdtest.Manager) {
	t.Helper()
	exec := fmt.Sprintf("%s --link %s --no-watch", demoBinary(t), u.link)
	if !u.socket {
		exec += fmt.Sprintf(" --addr 127.0.0.1:%d", u.port)
	}
	log := filepath.Join(t.TempDir(), "demo.log")
	unit := fmt.Sprintf(`[Unit]
StartLimitIntervalSec=0

[Service]
Type=notify
ExecStart=%s
ExecReload=/bin/kill -HUP $MAINPID
Restart=%s
LimitCORE=0
StandardOutput=append:%s
StandardError=append:%s
`, exec, u.restart, log, log)
	if u.watchdog > 0 {
		unit += fmt.Sprintf("WatchdogSec=%dms\n", u.watchdog.Milliseconds())
	}
	m.WriteUnit(t, "demo.service", unit)
	start := "demo.service"
	if u.socket {
		m.WriteUnit(t, "demo.socket", fmt.Sprintf("[Socket]\nListenStream=127.0.0.1:%d\n", u.port))
		start = "demo.socket"
	}
	if out, err := m.Systemctl("start", start); err != nil {
		t.Fatalf("%v\n%s\nserver log:\n%s", err, out, readFile(log))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo server log:\n%s", readFile(log))
		}
	})
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func dbusConn(t testing.TB, m *systemdtest.Manager) *sddbus.Conn {
	t.Helper()
	conn, err := sddbus.NewConnection(m.Dial)
	if err != nil {
		t.Fatalf("connect to the test manager over D-Bus: %v", err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// restarter restarts demo.service over D-Bus and waits for the job.
func restarter(conn *sddbus.Conn) func(context.Context) error {
	return func(ctx context.Context) error {
		done := make(chan string, 1)
		if _, err := conn.RestartUnitContext(ctx, "demo.service", "replace", done); err != nil {
			return err
		}
		select {
		case r := <-done:
			if r != "done" {
				return fmt.Errorf("restart job ended %q", r)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// The second proof: under socket activation, restarting the unit
// (to pick up each link swap) refuses and fails no request.
func TestRestartUnderLoadWithSocketActivationRefusesNothing(t *testing.T) {
	m := systemdtest.Start(t)
	dev, err := demobench.NewDevice(t.TempDir(), models)
	if err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	unitSpec{link: dev.Link, port: port, socket: true, restart: "on-failure"}.install(t, m)
	conn := dbusConn(t, m)
	load := demobench.Load{URL: fmt.Sprintf("http://127.0.0.1:%d/v1/infer", port), Workers: 4,
		Input: dev.Input, Expect: dev.Expect, Tolerance: 1e-4}
	run, err := demobench.Measure(context.Background(), "restart, socket activation", load, dev, 10, restarter(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d answers %v, %d failed, swap→answer median %v max %v", run.Summary.OK, run.Summary.ByVersion,
		run.Summary.Failed, run.Median(), run.Max())
	if run.Summary.Failed != 0 {
		t.Fatalf("%d requests failed across 10 restarts: %v", run.Summary.Failed, run.Summary.Errors)
	}
	if n := m.Show(t, "demo.service", "NRestarts"); n != "0" {
		t.Errorf("NRestarts = %s: the server crashed, not restarted by hand", n)
	}
}

// The third proof: the hang variant loads, says READY=1, then its
// serving path hangs; it stops pinging and systemd's watchdog kills it.
func TestHungServerIsKilledByTheWatchdog(t *testing.T) {
	m := systemdtest.Start(t)
	dev := variantDevice(t, "hang")
	if err := demobench.Swap(dev.Link, dev.B); err != nil {
		t.Fatal(err)
	}
	unitSpec{link: dev.Link, port: testutil.FreePort(t), watchdog: time.Second, restart: "no"}.install(t, m)
	if got := m.Show(t, "demo.service", "ActiveState"); got != "active" {
		t.Fatalf("the hang variant did not start (ActiveState %s): it must hang only after READY=1", got)
	}
	conn := dbusConn(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		props, err := conn.GetUnitTypePropertiesContext(ctx, "demo.service", "Service")
		if err != nil {
			t.Fatalf("read Service properties over D-Bus: %v", err)
		}
		if props["Result"] == "watchdog" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no watchdog kill; Result=%v", props["Result"])
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := m.Show(t, "demo.service", "ActiveState"); got != "failed" {
		t.Errorf("after the watchdog kill ActiveState = %s, want failed", got)
	}
}

// The control for the test above: a healthy server under the same watchdog
// keeps pinging and is never killed.
func TestHealthyServerKeepsTheWatchdogFed(t *testing.T) {
	m := systemdtest.Start(t)
	dev, err := demobench.NewDevice(t.TempDir(), models)
	if err != nil {
		t.Fatal(err)
	}
	unitSpec{link: dev.Link, port: testutil.FreePort(t), watchdog: 500 * time.Millisecond, restart: "no"}.install(t, m)
	time.Sleep(3 * time.Second) // six watchdog intervals
	state, result := m.Show(t, "demo.service", "ActiveState"), m.Show(t, "demo.service", "Result")
	if state != "active" || result != "success" {
		t.Fatalf("healthy server under WatchdogSec=500ms: ActiveState=%s Result=%s", state, result)
	}
}
