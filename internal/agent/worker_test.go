package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fetch"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

func testConfig(t testing.TB) *config.Config {
	t.Helper()
	root := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf("device_id = \"d\"\nstate_root = %q\n[[model]]\nname = \"demo\"\n", root)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestInstallRetriesNetworkFailuresUntilItSucceeds: an install whose download
// fails for network reasons stays queued and is retried with backoff.
func TestInstallRetriesNetworkFailuresUntilItSucceeds(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.RetryMin = 10 * time.Millisecond
	a.metrics = newMetrics(cfg)
	var calls atomic.Int64
	a.Install = func(ctx context.Context, d *session.Session, source string, _ session.InstallOptions) error {
		if calls.Add(1) < 3 {
			return fmt.Errorf("fetch %s: %w: connection refused", source, fetch.ErrDownload)
		}
		return nil
	}
	_, err = a.Inbox.Add(Command{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"})
	testutil.OK(t, err)
	workUntilDone(t, a, 0)
	if calls.Load() != 3 {
		t.Fatalf("installer called %d times, want 3 (two network failures, one success)", calls.Load())
	}
}

// workUntilDone runs the work loop until the inbox is empty, then linger
// longer, and stops it.
func workUntilDone(t *testing.T, a *Agent, linger time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.work(ctx); close(done) }()
	testutil.WaitFor(t, 10*time.Second, "the queued commands to be done", func() bool {
		_, cmds := a.Inbox.Pending()
		return len(cmds) == 0
	})
	time.Sleep(linger)
	cancel()
	<-done
}

// TestRejectedInstallIsNotRetried: a verdict (bad signature) is final: the
// work loop runs the install once, drops the command, and goes on with the
// next one instead of retrying the rejected one.
func TestRejectedInstallIsNotRetried(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.RetryMin = 10 * time.Millisecond
	a.metrics = newMetrics(cfg)
	var calls atomic.Int64
	a.Install = func(ctx context.Context, d *session.Session, source string, _ session.InstallOptions) error {
		calls.Add(1)
		return fmt.Errorf("%w: untrusted key", verify.ErrRejected)
	}
	for _, c := range []Command{
		{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"},
		{ID: "g1", Action: ActionMarkGood, Model: "demo"},
	} {
		if _, err := a.Inbox.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	workUntilDone(t, a, 100*time.Millisecond) // ten retry periods after: a retry would show
	if n := calls.Load(); n != 1 {
		t.Fatalf("installer called %d times, want 1: a rejected artifact must not be retried", n)
	}
}

func TestRestoreBackoffDoublesUpToItsBound(t *testing.T) {
	first := 2 * time.Second
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{{0, 0}, {1, 2 * time.Second}, {2, 6 * time.Second}, {3, 14 * time.Second}} {
		if got := restoreBackoff(tc.attempts, first); got != tc.want {
			t.Errorf("restoreBackoff(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
	// Far out, the tries are restoreBackoffMax apart.
	if d := restoreBackoff(40, first) - restoreBackoff(39, first); d != restoreBackoffMax {
		t.Errorf("step after 39 tries = %s, want %s", d, restoreBackoffMax)
	}
}

// A worker wedged in a command that ignores its context stops beating: Alive
// turns false past the command bound (so systemd's watchdog, fed only while
// Alive, restarts the agent), while a quiet but healthy agent stays alive.
func TestAWedgedWorkerStopsTheWatchdog(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	a.CommandBound = 300 * time.Millisecond
	wedged := make(chan struct{})
	t.Cleanup(func() { close(wedged) })
	a.Install = func(ctx context.Context, d *session.Session, source string, _ session.InstallOptions) error {
		<-wedged // a read of a FIFO, say: deaf to ctx
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.live.register(loopWork, a.commandBound())
	go a.work(ctx)
	time.Sleep(100 * time.Millisecond)
	if !a.Alive() {
		t.Fatal("an idle worker must count as alive")
	}
	_, err = a.Inbox.Add(Command{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"})
	testutil.OK(t, err)
	testutil.WaitFor(t, 5*time.Second, "the wedged worker to be counted dead", func() bool { return !a.Alive() })
}

// Download progress is a sign of life: a long install that keeps receiving
// chunks never counts as wedged.
func TestDownloadProgressKeepsTheWorkerAlive(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	a.CommandBound = 300 * time.Millisecond
	var stillAlive atomic.Bool
	stillAlive.Store(true)
	a.Install = func(ctx context.Context, d *session.Session, source string, o session.InstallOptions) error {
		for i := range 10 { // 1 s of chunks, each well within the bound
			o.Progress(int64(i), 10)
			time.Sleep(100 * time.Millisecond)
			if !a.Alive() {
				stillAlive.Store(false)
			}
		}
		return nil
	}
	a.live.register(loopWork, a.commandBound())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = a.Inbox.Add(Command{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"})
	testutil.OK(t, err)
	go a.work(ctx)
	testutil.WaitFor(t, 10*time.Second, "the install to finish", func() bool { _, c := a.Inbox.Pending(); return len(c) == 0 })
	if !stillAlive.Load() {
		t.Fatal("a worker receiving chunks was counted dead")
	}
}

// TestCorruptDownloadIsCountedAndRetried: chunks fetched again because their
// bytes were corrupt are counted, and an install that failed so (a captive
// portal) is a download failure: queued and tried again, not dropped.
func TestCorruptDownloadIsCountedAndRetried(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	a.RetryMin = time.Millisecond
	var calls atomic.Int32
	a.Install = func(ctx context.Context, d *session.Session, source string, o session.InstallOptions) error {
		o.Corrupt()
		if calls.Add(1) == 1 {
			o.Corrupt()
			return errors.New("download failed: get http://repo/chunks/ab/ab.zst: chunk does not match the manifest: truncated (fetched 4 times)")
		}
		return nil
	}
	_, err = a.Inbox.Add(Command{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"})
	testutil.OK(t, err)
	workUntilDone(t, a, 0)
	if n := calls.Load(); n != 2 {
		t.Fatalf("the install ran %d times, want a retry after the download failure", n)
	}
	if got := scrapeMetrics(t, a.metrics); !strings.Contains(got, `modelslot_download_corrupt_total{model="demo"} 3`) {
		t.Fatalf("corrupt chunks not counted:\n%s", got)
	}
}

// TestEveryCommandThatRunsIsAnswered: commands whose run reports no terminal
// event of its own — a mark-good or rollback with nothing to act on, an
// install that fails for good — are answered with exactly one terminal
// event carrying their id.
func TestEveryCommandThatRunsIsAnswered(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	a.Install = func(context.Context, *session.Session, string, session.InstallOptions) error {
		return fmt.Errorf("%w: signature does not verify", verify.ErrRejected)
	}
	for _, c := range []Command{
		{ID: "g1", Action: ActionMarkGood, Model: "demo"},
		{ID: "r1", Action: ActionRollback, Model: "demo"},
		{ID: "i1", Action: ActionInstall, Model: "demo", Source: "http://127.0.0.1:1/x.json"},
	} {
		_, err := a.Inbox.Add(c)
		testutil.OK(t, err)
	}
	workUntilDone(t, a, 0)
	o, err := session.OpenOutbox(cfg, &cfg.Models[0])
	testutil.OK(t, err)
	evs, err := o.Pending("mqtt", 100)
	testutil.OK(t, err)
	var got []string
	for _, ev := range evs {
		if !ev.Terminal() {
			continue
		}
		got = append(got, ev.CommandID+":"+ev.Status+":"+ev.FailureReason)
	}
	want := "g1:nothing_to_do: r1:nothing_to_do: i1:failed:verification_failed"
	if strings.Join(got, " ") != want {
		t.Fatalf("terminal events %q, want %q", strings.Join(got, " "), want)
	}
	// The counter says what the answer said: a command with nothing to do
	// did not fail.
	m := scrapeMetrics(t, a.metrics)
	for _, w := range []string{
		`modelslot_commands_total{action="mark-good",result="nothing_to_do"} 1`,
		`modelslot_commands_total{action="rollback",result="nothing_to_do"} 1`,
		`modelslot_commands_total{action="rollback",result="failed"} 0`,
		`modelslot_commands_total{action="mark-good",result="ok"} 0`,
		`modelslot_commands_total{action="install",result="failed"} 1`,
	} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics: missing %s", w)
		}
	}
}

// TestQueuedLocalSourceIsRecheckedAtRunTime: an install queued with a source
// that is no longer acceptable (queued by an older agent, or its file
// replaced since intake) is answered rejected and never handed to the
// installer.
func TestQueuedLocalSourceIsRecheckedAtRunTime(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg)
	testutil.OK(t, err)
	a.metrics = newMetrics(cfg)
	o, err := session.OpenOutbox(cfg, &cfg.Models[0])
	testutil.OK(t, err)
	a.outboxes = map[string]*report.Outbox{"demo": o}
	var calls atomic.Int64
	a.Install = func(context.Context, *session.Session, string, session.InstallOptions) error {
		calls.Add(1)
		return nil
	}
	_, err = a.Inbox.Add(Command{ID: "old", Action: ActionInstall, Model: "demo", Source: "/etc/shadow"})
	testutil.OK(t, err)
	workUntilDone(t, a, 0)
	if calls.Load() != 0 {
		t.Fatal("the installer ran on /etc/shadow")
	}
	evs, err := o.Pending("mqtt", 100)
	testutil.OK(t, err)
	if len(evs) != 1 || evs[0].Status != report.StatusRejected || evs[0].CommandID != "old" || evs[0].FailureReason != ReasonInvalidCommand {
		t.Fatalf("events %+v, want one rejected answer to command old", evs)
	}
}
