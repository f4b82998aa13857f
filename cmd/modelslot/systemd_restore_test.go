package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/testutil"
)

// Every rollback and revert must reach the running server: each test here
// ends with the link, state.json, `status --json`, the unit and the process
// answering on the port all naming the same version (agree), which answers
// its own probe.

// A rollback (or mark-bad) of a committed version restarts the unit on the
// previous version before it returns: under load, every answer to a request
// sent after the command returned comes from v1.
func TestSystemdRollbackOfACommittedVersionReachesTheServer(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"rollback", "mark-bad"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			d := newSDDevice(t, sdOptions{})
			d.install(0, "v1")
			d.install(0, "v2")
			d.agree("v2")
			load := d.startLoad()
			d.must(0, cmd)
			returned := time.Now()
			time.Sleep(time.Second)
			after := load.stop().since(returned)
			if len(after) < 10 {
				t.Fatalf("only %d answers after the %s returned; the load did not run", len(after), cmd)
			}
			for _, a := range after {
				if a.version != "v1" {
					t.Fatalf("%s after %s returned: answer %q (%s), want v1 every time", a.sent.Sub(returned).Round(time.Millisecond), cmd, a.version, a.err)
				}
			}
			st := d.agree("v1")
			if b := st.Slots[*st.PreviousSlot]; b.Version != "v2" || b.Status != "bad" || !strings.HasPrefix(b.Reason, "manual") {
				t.Fatalf("v2 must be left bad (manual): %+v", b)
			}
			events := d.events()
			if want := "v1:rolling_back v1:rolled_back"; !strings.HasSuffix(events, want) {
				t.Fatalf("events end %q, want %q", events, want)
			}
			d.must(0, cmd) // repeated: nothing changes
			d.agree("v1")
		})
	}
}

// The unit was restarted by hand up to its start limit just before a crashing
// version is installed: the restore's restart would be refused by the limit
// (with a Result that still reads exit-code). It is revived (reset-failed,
// socket started) and v1 serves again.
func TestSystemdRevertPastTheStartLimitServesTheOldVersion(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{})
	d.install(0, "v1")
	for range 3 {
		d.systemctl(t, "restart", demoUnit)
	}
	d.install(exitRolledBack, "v3-crash")
	failedWith(t, d.agree("v1"), "v3-crash", "crash_loop")
}

// The service manager goes away in the middle of the window: killed (its units
// go on unsupervised), or stopped and started again. Nobody could watch the
// new version, so it is not committed and not blamed: the trial ends as
// manager_unreachable, the slot stays installed, and once the manager is back
// v1 serves again (the process of v2 that the killed manager left is ended).
func TestSystemdManagerLostMidWindowRestoresTheOldVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		window time.Duration
		lose   func(d *sdDevice)
	}{
		{"killed-20s-window", 20 * time.Second, func(d *sdDevice) { d.m.Kill(d.t) }},
		{"killed-4s-window", 4 * time.Second, func(d *sdDevice) { d.m.Kill(d.t) }},
		{"restarted", 20 * time.Second, func(d *sdDevice) { d.m.Exit(d.t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newSDDevice(t, sdOptions{window: tc.window})
			d.install(0, "v1")
			p := d.start(nil, "install", "--insecure", "--label", "v2", modelDir("v2"))
			d.inWindow("v2")
			tc.lose(d)
			time.Sleep(3 * time.Second) // the manager is away for a while
			d.m.Relaunch(t)
			r := p.wait(t)
			if r.code != exitRolledBack {
				t.Fatalf("install with the manager lost mid-window: want exit %d, got %v", exitRolledBack, r)
			}
			st := d.agree("v1")
			if b := st.Slots[*st.PreviousSlot]; b.Version != "v2" || b.Status != "installed" {
				t.Fatalf("v2 must not be blamed (slot installed, not bad): %+v", b)
			}
			if st.LastFailure == nil || !strings.HasPrefix(st.LastFailure.Reason, "manager_unreachable:") {
				t.Fatalf("last_failure %+v, want manager_unreachable", st.LastFailure)
			}
			// Not blamed, so it may be tried again, and now it commits.
			d.install(0, "v2")
			d.agree("v2")
		})
	}
}

// Two models served by one unit: a second model's activation during the
// first's window is refused as busy (it would restart the unit under the
// first's trial), and the first's trial concludes on its own merits.
func TestSystemdTwoModelsOnOneUnitAreSerialized(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{window: 6 * time.Second})
	d.addModel("extra")
	d.must(0, "--model", "demo", "install", "--insecure", "--label", "v1", modelDir("v1"))
	d.must(0, "--model", "extra", "install", "--insecure", "--label", "v1", modelDir("v1"))
	p := d.start(nil, "--model", "demo", "install", "--insecure", "--label", "v2", modelDir("v2"))
	d.inWindow("v2")
	r := d.run(nil, "--model", "extra", "install", "--insecure", "--label", "v2", modelDir("v2"))
	if r.code != exitBusy || !strings.Contains(r.stderr, demoUnit) {
		t.Fatalf("the second model's install during the first's window: want exit %d naming the unit, got %v", exitBusy, r)
	}
	if r := p.wait(t); r.code != 0 {
		t.Fatalf("the first model's trial: %v", r)
	}
	st := d.agreeOn("demo", "v2")
	if prev := st.Slots[*st.PreviousSlot]; prev.Status != "good" {
		t.Fatalf("v1 must stay good: %+v", prev)
	}
	d.must(0, "--model", "extra", "install", "--insecure", "--label", "v2", modelDir("v2"))
}

// With two models configured, the one packaged OnFailure= template finds the
// model in trial from the failed unit's name and reverts it.
func TestSystemdOnFailureWithTwoModelsRevertsTheOneInTrial(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{})
	d.addModel("extra")
	d.must(0, "--model", "demo", "install", "--insecure", "--label", "v1", modelDir("v1"))
	d.must(0, "--model", "extra", "install", "--insecure", "--label", "v1", modelDir("v1"))
	if fired, r := d.crashAt(trialPoint, "--model", "demo", "install", "--insecure", "--label", "v3-crash", modelDir("v3-crash")); !fired {
		t.Fatalf("crash point %s did not fire: %v", trialPoint, r)
	}
	d.m.Systemctl("restart", demoUnit) // the new version crashes until systemd gives up
	testutil.WaitFor(t, 60*time.Second, "the rollback unit to revert the trial", func() bool {
		st := d.view().State()
		return st.Trial == nil && st.Restore == nil && d.servedNow() == "v1"
	})
	testutil.WaitFor(t, 10*time.Second, "the rollback unit to finish", func() bool {
		return d.m.Show(t, rollbackUnit, "ActiveState") != "activating"
	})
	if res, code := d.m.Show(t, rollbackUnit, "Result"), d.m.Show(t, rollbackUnit, "ExecMainStatus"); res != "success" || code != "0" {
		t.Fatalf("%s: Result=%s ExecMainStatus=%s", rollbackUnit, res, code)
	}
	failedWith(t, d.agreeOn("demo", "v1"), "v3-crash", "crash_loop")
}

// A masked or missing unit is refused before the link moves: exit 2, the new
// version stays installed, nothing was swapped, and the reason is a code of
// the contract.
func TestSystemdMaskedOrMissingUnitIsRefusedBeforeTheSwap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, unit string }{{"masked", demoUnit}, {"missing", "no-such-inference.service"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newSDDevice(t, sdOptions{})
			d.install(0, "v1")
			if tc.name == "masked" {
				d.mask(t, true)
			} else {
				d.extraConf = strings.Replace(d.extraConf, `unit = "`+demoUnit+`"`, `unit = "`+tc.unit+`"`, 1)
				d.writeConfig()
			}
			r := d.install(exitUsage, "v2")
			if !strings.Contains(r.stderr, tc.unit) || !strings.Contains(r.stderr, "link was not moved") {
				t.Fatalf("the error must name the unit and say nothing moved: %s", r.stderr)
			}
			st := d.status()
			if *st.ActiveVersion != "v1" || st.Trial != nil || st.LastFailure != nil {
				t.Fatalf("nothing may change but the installed slot: %+v", st)
			}
			if s := st.Slots[slotOther(*st.ActiveSlot)]; s.Version != "v2" || s.Status != "installed" {
				t.Fatalf("v2 must stay installed, not bad: %+v", s)
			}
			if got := d.servedNow(); got != "v1" {
				t.Fatalf("the server answers %q, want v1", got)
			}
			if !strings.HasSuffix(d.events(), "v2:failed(unit_unavailable)") {
				t.Fatalf("events: %s", d.events())
			}
			if tc.name == "masked" {
				d.mask(t, false)
				d.install(0, "v2")
				d.agree("v2")
			}
		})
	}
}

// status reports and changes nothing: after a crash mid-window it shows the
// interrupted trial at once (no restart, no waiting for a window), with the
// bus and without it; verify works without the bus too.
func TestSystemdStatusOnlyReports(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{window: 20 * time.Second})
	d.install(0, "v1")
	if fired, r := d.crashAt(trialPoint, "install", "--insecure", "--label", "v2", modelDir("v2")); !fired {
		t.Fatalf("crash point %s did not fire: %v", trialPoint, r)
	}
	pid := d.m.Show(t, demoUnit, "MainPID")
	before := readFile(filepath.Join(d.root, "demo", "state.json"))
	for range 3 {
		start := time.Now()
		st := d.status()
		if took := time.Since(start); took > time.Second {
			t.Fatalf("status took %s, want under 1 s", took)
		}
		if st.Trial == nil || !st.Trial.Interrupted || st.Unit == nil || !st.Unit.Reachable {
			t.Fatalf("status must show the interrupted trial and the unit: %+v", st)
		}
	}
	if after := readFile(filepath.Join(d.root, "demo", "state.json")); after != before {
		t.Fatalf("status changed state.json:\n%s\n→\n%s", before, after)
	}
	if got := d.m.Show(t, demoUnit, "MainPID"); got != pid {
		t.Fatalf("status restarted the unit: MainPID %s → %s", pid, got)
	}
	human := d.must(0, "status").stdout
	if !strings.Contains(human, "interrupted") {
		t.Fatalf("status must say the trial was interrupted:\n%s", human)
	}
	// The manager hung (SIGSTOP), then the bus gone (a config naming a bus
	// that does not exist): status and verify still answer, and say so.
	syscall.Kill(d.m.PID, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(d.m.PID, syscall.SIGCONT) }) // a stopped manager ignores its teardown's SIGTERM
	d.statusWithoutBus()
	syscall.Kill(d.m.PID, syscall.SIGCONT)
	conf := d.extraConf
	d.extraConf = strings.Replace(conf, d.m.BusAddress(), "unix:path=/nonexistent/bus", 1)
	d.writeConfig()
	d.statusWithoutBus()
	d.extraConf = conf
	d.writeConfig()
	// recover finishes the trial.
	d.must(0, "recover")
	d.agree("v2")
}

func (d *sdDevice) statusWithoutBus() {
	d.t.Helper()
	start := time.Now()
	st := d.status()
	if took := time.Since(start); took > time.Second {
		d.t.Fatalf("status without the bus took %s, want under 1 s", took)
	}
	if st.Unit == nil || st.Unit.Reachable || st.Unit.Error == "" || st.Trial == nil || !st.Trial.Interrupted {
		d.t.Fatalf("status must show the trial and say the manager did not answer: %+v", st)
	}
	if human := d.must(0, "status").stdout; !strings.Contains(human, "did not answer") {
		d.t.Fatalf("status without the bus:\n%s", human)
	}
	start = time.Now()
	d.must(0, "verify")
	if took := time.Since(start); took > 5*time.Second {
		d.t.Fatalf("verify without the bus took %s", took)
	}
}

// mask masks (or unmasks) the demo unit the way `systemctl mask` would, in
// the unit directory that wins over the one holding the unit file.
func (d *sdDevice) mask(t *testing.T, on bool) {
	t.Helper()
	dir := d.m.UnitDir + ".control"
	link := filepath.Join(dir, demoUnit)
	if on {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/dev/null", link); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	d.m.DaemonReload(t)
	want := map[bool]string{true: "masked", false: "loaded"}[on]
	if got := d.m.Show(t, demoUnit, "LoadState"); got != want {
		t.Fatalf("LoadState %s, want %s", got, want)
	}
}

// agreeOn is agree for one of several models.
func (d *sdDevice) agreeOn(model, version string) modelStatus {
	d.t.Helper()
	r := d.must(0, "--model", model, "status", "--json")
	var s struct{ Models []modelStatus }
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || len(s.Models) != 1 {
		d.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	st := s.Models[0]
	if st.ActiveVersion == nil || *st.ActiveVersion != version || st.Trial != nil || st.Restore != nil {
		d.t.Fatalf("model %s: %+v, want %s active with nothing pending", model, st, version)
	}
	if got := d.served(); got != version {
		d.t.Fatalf("the server answers with version %q, want %q", got, version)
	}
	d.probe(version)
	return st
}

func slotOther(s string) string {
	if s == "a" {
		return "b"
	}
	return "a"
}

// addModel adds a second model on the same unit, with no probe of its own
// (the demo server answers for the first model's link).
func (d *sdDevice) addModel(name string) {
	d.t.Helper()
	link := filepath.Join(filepath.Dir(d.link), name)
	d.extraConf += fmt.Sprintf("\n[[model]]\nname = %q\nlink = %q\nunit = %q\n  [model.health]\n  confirm_window = \"500ms\"\n",
		name, link, demoUnit)
	// [systemd] must stay last: move it after the new model.
	if i := strings.Index(d.extraConf, "\n[systemd]"); i >= 0 {
		j := strings.Index(d.extraConf[i+1:], "\n[[model]]")
		sys := d.extraConf[i : i+1+j]
		d.extraConf = d.extraConf[:i] + d.extraConf[i+1+j:] + sys + "\n"
	}
	d.writeConfig()
}

// events lists the outbox's events of model demo as "version:status" or
// "version:status(reason)", in order.
func (d *sdDevice) events() string {
	d.t.Helper()
	dir := filepath.Join(d.root, "demo", "outbox")
	entries, err := os.ReadDir(dir)
	if err != nil {
		d.t.Fatalf("read the outbox: %v", err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var ev report.Event
		b := readFile(filepath.Join(dir, e.Name()))
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			d.t.Fatalf("event %s: %v", e.Name(), err)
		}
		s := ev.TargetVersion + ":" + ev.Status
		if ev.FailureReason != "" && (ev.Status == "failed" || ev.FailureReason != "manual") {
			s += "(" + ev.FailureReason + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// answer is one request of a load run.
type answer struct {
	sent    time.Time
	version string // "" when nothing answered
	err     error
}

type answers []answer

func (as answers) since(t time.Time) answers {
	var out answers
	for _, a := range as {
		if a.sent.After(t) {
			out = append(out, a)
		}
	}
	return out
}

type loadRun struct {
	stopc chan struct{}
	done  chan answers
}

// startLoad asks the server its version every 5 ms until stop.
func (d *sdDevice) startLoad() *loadRun {
	l := &loadRun{stopc: make(chan struct{}), done: make(chan answers, 1)}
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", d.port)
	var mu sync.Mutex
	var got answers
	go func() {
		c := http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-l.stopc:
				mu.Lock()
				l.done <- got
				mu.Unlock()
				return
			case <-time.After(5 * time.Millisecond):
			}
			a := answer{sent: time.Now()}
			resp, err := c.Get(url)
			if err == nil {
				var h struct{ Version string }
				a.err = json.NewDecoder(resp.Body).Decode(&h)
				a.version = h.Version
				resp.Body.Close()
			} else {
				a.err = err
			}
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	}()
	return l
}

func (l *loadRun) stop() answers {
	close(l.stopc)
	return <-l.done
}

// Check commands in a real update: one that leaves a background child holding
// its output and exits 0 passes (and the child does not outlive it); one that
// prints 300 MB before failing is judged check_failed without modelslot's
// memory growing with it.
func TestSystemdCheckCommandsAreBoundedAndTheirChildrenEnded(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	d := newSDDevice(t, sdOptions{checks: []string{
		fmt.Sprintf(`sleep 300 & echo $! > %s; exit 0`, pidFile),
		`test "$MODELSLOT_VERSION" != v1 || exit 0; head -c 300000000 /dev/zero | tr '\0' x; exit 1`,
	}})
	start := time.Now()
	d.install(0, "v1")
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("a check with a background child held the install up: %s", took)
	}
	d.agree("v1")
	if pid := strings.TrimSpace(readFile(pidFile)); pid == "" {
		t.Fatal("the check did not start its child")
	} else if _, err := os.Stat("/proc/" + pid); err == nil && !strings.Contains(readFile("/proc/"+pid+"/stat"), ") Z ") {
		t.Fatalf("the check's child %s outlived the check", pid)
	}
	cmd := d.command(nil, "install", "--insecure", "--label", "v2", modelDir("v2"))
	var errb strings.Builder
	cmd.Stderr = &errb
	testutil.OK(t, cmd.Start())
	stop := testutil.WatchRSS(cmd.Process.Pid) // its own VmHWM: getrusage's maxrss carries the test binary's peak over exec
	err := cmd.Wait()
	maxRSS := stop()
	if code := cmd.ProcessState.ExitCode(); code != exitRolledBack {
		t.Fatalf("the check that prints 300 MB and fails: exit %d (%v), want %d\n%s", code, err, exitRolledBack, errb.String())
	}
	t.Logf("modelslot's peak RSS with a check printing 300 MB: %d MiB", maxRSS>>20)
	if maxRSS > 200<<20 {
		t.Fatalf("modelslot's peak RSS was %d MiB while the check printed 300 MB: its output is not bounded", maxRSS>>20)
	}
	failedWith(t, d.agree("v1"), "v2", "check_failed")
}
