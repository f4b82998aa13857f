package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/verify"
)

// pidUnit is a unit whose activation starts a new main process, or, with
// keep, leaves the old one running (as a reload does).
type pidUnit struct {
	pid  atomic.Uint32
	keep bool
}

func (u *pidUnit) Activate(context.Context) error {
	if !u.keep {
		u.pid.Add(1)
	}
	return nil
}

func (u *pidUnit) Watch(ctx context.Context) <-chan error {
	ch := make(chan error)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}

func (u *pidUnit) MainPID(context.Context) (uint32, error) { return u.pid.Load(), nil }

// noPIDUnit cannot tell its main process (no MainPID method).
type noPIDUnit struct{}

func (noPIDUnit) Activate(context.Context) error { return nil }
func (noPIDUnit) Watch(ctx context.Context) <-chan error {
	return (&pidUnit{}).Watch(ctx)
}

// modelSlot writes a model directory with the given files and its manifest, as
// a slot looks to the confirmer.
func modelSlot(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	m, err := verify.Scan(context.Background(), dir, "demo", "v2", 1)
	must(t, err)
	data, err := m.Marshal()
	must(t, err)
	must(t, os.MkdirAll(filepath.Join(dir, verify.MetaDir), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, verify.MetaDir, "manifest.json"), data, 0o644))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// With probe_version = "off", an answer without any version passes once the
// unit runs a new main process, and fails while the process from before the
// activation is still the unit's: then the old process is what answers, even
// if its output happens to match.
func TestVersionOffNeedsANewMainProcess(t *testing.T) {
	dir := modelSlot(t, map[string]string{"probe/input.json": `{}`, "probe/expected.json": `{"y": [0.5]}`})
	url := answering(t, map[string]any{"y": []any{0.5}}, nil) // no version anywhere
	off, _ := ParseVersionCheck("off")
	confirm := func(u Unit) error {
		c := &Confirmer{Model: "demo", SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir), Unit: u, ProbeURL: url,
			VersionCheck: off, StartTimeout: 600 * time.Millisecond, Window: 50 * time.Millisecond, ProbeSamples: 1}
		return c.Confirm(context.Background(), "b", "v2")
	}
	restarted := &pidUnit{}
	restarted.pid.Store(100)
	if err := confirm(restarted); err != nil {
		t.Fatalf("a new main process answering: Confirm = %v, want a pass", err)
	}
	kept := &pidUnit{keep: true}
	kept.pid.Store(100)
	start := time.Now()
	err := confirm(kept)
	if err == nil || !strings.HasPrefix(err.Error(), "probe_mismatch: the unit's main process is still PID 100") {
		t.Fatalf("the old process answering: Confirm = %v, want probe_mismatch naming PID 100", err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("gave up after %s: an unchanged PID must be retried until the start timeout (600ms)", took)
	}
	if err := confirm(noPIDUnit{}); err == nil || !strings.HasPrefix(err.Error(), "health_check_failed: probe_version = \"off\" needs a unit") {
		t.Fatalf("a unit without a main PID: Confirm = %v, want health_check_failed", err)
	}
}

// The tolerances file a slot's manifest names is applied; a broken one is a
// health_check_failed naming it.
func TestConfirmerReadsTheSlotsTolerances(t *testing.T) {
	url := answering(t, map[string]any{"logits": []any{1.0009}, "version": "v2"}, nil)
	for tols, want := range map[string]string{
		`{"/logits": 1e-3}`:  "",
		`{"/logits": 1e-5}`:  "probe_mismatch: logits[0]",
		`{"logits": 1e-3}`:   "health_check_failed: probe/tolerances.json: not a JSON pointer",
		`{"/logits": -1}`:    "health_check_failed: probe/tolerances.json: the tolerance of \"/logits\" is -1",
		`["/logits", 1e-3]`:  "health_check_failed: probe/tolerances.json must be a JSON object",
		`{"/logits": "1e3"}`: "health_check_failed: probe/tolerances.json must be a JSON object",
	} {
		dir := modelSlot(t, map[string]string{"probe/input.json": `{}`, "probe/expected.json": `{"logits": [1.0]}`,
			"probe/tolerances.json": tols})
		c := &Confirmer{Model: "demo", SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir), ProbeURL: url, ProbeSamples: 1}
		err := c.Confirm(context.Background(), "b", "v2")
		if (want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), want)) {
			t.Errorf("tolerances %s: Confirm = %v, want %q", tols, err, want)
		}
	}
}

// errPIDUnit cannot be asked for its main PID: the manager is away.
type errPIDUnit struct{ noPIDUnit }

var errAway = errors.New("the manager is away")

func (errPIDUnit) MainPID(context.Context) (uint32, error) {
	return 0, reason.New(reason.ManagerUnreachable, "unit demo.service: %w", errAway)
}

// A main PID that cannot be read before the activation is the unit's
// reason, passed on as it is (the device marks it not judged), not a
// health_check_failed that would blame the version.
func TestVersionOffManagerAwayIsNotAVerdictOnTheVersion(t *testing.T) {
	dir := modelSlot(t, map[string]string{"probe/input.json": `{}`, "probe/expected.json": `{}`})
	off, _ := ParseVersionCheck("off")
	c := &Confirmer{Model: "demo", SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir), Unit: errPIDUnit{},
		ProbeURL: "http://127.0.0.1:1/", VersionCheck: off, StartTimeout: time.Second}
	err := c.Confirm(context.Background(), "b", "v2")
	if c, _ := reason.Of(err); !errors.Is(err, errAway) || c != reason.ManagerUnreachable {
		t.Fatalf("Confirm = %v, want the unit's manager_unreachable unchanged", err)
	}
}
