package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// fakeUnit is a Unit whose activation and watch a test scripts.
type fakeUnit struct {
	activate    error         // returned by Activate
	blockActive bool          // Activate waits for its context (a start that never finishes)
	failAfter   time.Duration // the watch reports fail after this long (0: never)
	fail        error
	// failAtEnd is reported after the watch's context ended: a watch that
	// could not judge the unit when the window closed and found it failed.
	failAtEnd error
}

func (u *fakeUnit) Activate(ctx context.Context) error {
	if u.blockActive {
		<-ctx.Done()
		return ctx.Err()
	}
	return u.activate
}

func (u *fakeUnit) Watch(ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() {
		defer close(ch)
		var after <-chan time.Time
		if u.failAfter > 0 {
			after = time.After(u.failAfter)
		}
		select {
		case <-after:
			ch <- u.fail
		case <-ctx.Done():
			if u.failAtEnd != nil {
				ch <- u.failAtEnd
			}
		}
	}()
	return ch
}

// probeServer answers v1's probe with v1's expected output as version.
func probeServer(t *testing.T, dir, version string, status int, delay time.Duration) string {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(dir, "probe", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		var answer map[string]any
		json.Unmarshal(want, &answer)
		answer["version"] = version
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The confirmer's whole decision table against a fake unit: each row is one
// way a trial can end, and the verdict (or commit) it must come to.
func TestConfirmerDecisionTable(t *testing.T) {
	dir := slotWithProbe(t)
	crash := reason.New(reason.CrashLoop, "unit demo.service: exited")
	watchdog := reason.New(reason.Watchdog, "unit demo.service: killed")
	lost := reason.New(reason.ManagerUnreachable, "unit demo.service: the manager went away")
	for _, tc := range []struct {
		name   string
		unit   *fakeUnit
		answer string // version the probe server answers as; "" = no probe
		status int    // probe HTTP status
		delay  time.Duration
		checks []string
		want   reason.Code // "" = commit
	}{
		{name: "healthy for the whole window commits", unit: &fakeUnit{}, answer: "v1", status: 200},
		{name: "no unit, no probe, no checks commits", unit: nil},
		{name: "activation fails", unit: &fakeUnit{activate: crash}, answer: "v1", status: 200, want: reason.CrashLoop},
		{name: "activation never finishes", unit: &fakeUnit{blockActive: true}, answer: "v1", status: 200, want: reason.StartTimeout},
		{name: "the unit fails in the window", unit: &fakeUnit{failAfter: 100 * time.Millisecond, fail: watchdog}, answer: "v1", status: 200, want: reason.Watchdog},
		{name: "the old version answers", unit: &fakeUnit{}, answer: "v0", status: 200, want: reason.ProbeMismatch},
		{name: "the unit crashes while the probe waits", unit: &fakeUnit{failAfter: 50 * time.Millisecond, fail: crash}, answer: "v1", status: 500, delay: 300 * time.Millisecond, want: reason.CrashLoop},
		{name: "the probe is refused by a healthy unit", unit: &fakeUnit{}, answer: "v1", status: 500, want: reason.HealthCheck},
		{name: "a check fails", unit: &fakeUnit{}, answer: "v1", status: 200, checks: []string{"exit 3"}, want: reason.CheckFailed},
		{name: "the manager is lost when the window ends", unit: &fakeUnit{failAtEnd: lost}, answer: "v1", status: 200, want: reason.ManagerUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Confirmer{Model: "demo", Link: dir, SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir),
				StartTimeout: 500 * time.Millisecond, Window: 300 * time.Millisecond, ProbeSamples: 1,
				Checks: Checks{Commands: tc.checks, Timeout: 5 * time.Second}}
			if tc.unit != nil {
				c.Unit = tc.unit
			}
			if tc.answer != "" {
				c.ProbeURL = probeServer(t, dir, tc.answer, tc.status, tc.delay)
			}
			err := c.Confirm(context.Background(), "a", "v1")
			got, _ := reason.Of(err)
			if tc.want == "" && err != nil || got != tc.want {
				t.Fatalf("Confirm = %v (code %q), want %q", err, got, tc.want)
			}
		})
	}
}

// A confirmation stopped by its context (SIGTERM) is no verdict: the error
// carries no code, so the trial is kept, not reverted.
func TestStoppedConfirmationIsNoVerdict(t *testing.T) {
	dir := slotWithProbe(t)
	c := &Confirmer{Model: "demo", SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir), Unit: &fakeUnit{},
		ProbeURL: probeServer(t, dir, "v1", 200, 0), Window: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Confirm(ctx, "a", "v1")
	if _, coded := reason.Of(err); coded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Confirm stopped by its context = %v, want the context's error and no code", err)
	}
}
