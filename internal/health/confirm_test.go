package health

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/verify"
)

// slotWithProbe makes a slot dir holding testdata model v1 with its manifest,
// as a slot looks to the confirmer.
func slotWithProbe(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "models", "v1")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	m, err := verify.Scan(context.Background(), dir, "demo", "v1", 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, verify.MetaDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, verify.MetaDir, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// manifestIn reads the manifest a test slot dir holds, as slots does.
func manifestIn(dir string) func(string) (*verify.Manifest, error) {
	return func(string) (*verify.Manifest, error) {
		data, err := os.ReadFile(filepath.Join(dir, verify.MetaDir, "manifest.json"))
		if err != nil {
			return nil, err
		}
		return verify.ParseManifest(data)
	}
}

// Restore's wait for the previous version is its own bound, not start_timeout:
// a server that keeps answering as another version is given up on after
// RestoreTimeout.
func TestRestoreProbeIsBoundedByRestoreTimeout(t *testing.T) {
	dir := slotWithProbe(t)
	c := &Confirmer{Model: "demo", SlotDir: func(string) string { return dir }, Manifest: manifestIn(dir),
		ProbeURL: server(t, "v2", []float64{0}, 0), StartTimeout: time.Minute, RestoreTimeout: 300 * time.Millisecond}
	start := time.Now()
	err := c.Restore(context.Background(), "a", "v1")
	if err == nil || !strings.Contains(err.Error(), `the answer came from version "v2", not "v1"`) {
		t.Fatalf("Restore = %v, want the old version still not answering", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Restore gave up after %s, want about RestoreTimeout (300ms), far below StartTimeout", took)
	}
}

// failingUnit fails its activation and has output to show.
type failingUnit struct{ lines []string }

func (u failingUnit) Activate(context.Context) error {
	return reason.New(reason.CrashLoop, "unit demo.service: exited before READY=1")
}
func (u failingUnit) Watch(context.Context) <-chan error { return make(chan error) }
func (u failingUnit) OutputTail(_ context.Context, n int) []string {
	return u.lines[max(len(u.lines)-n, 0):]
}

// A failed verdict carries the unit's last output lines, with the text of the
// verdict unchanged; a stopped confirmation (no verdict) carries none.
func TestFailureCarriesTheUnitsLastOutput(t *testing.T) {
	// RestoreTimeout: a failing restore is retried with backoff until it ends (60s by default).
	c := &Confirmer{Unit: failingUnit{lines: []string{"loading v3", "panic: bad weights"}}, RestoreTimeout: 300 * time.Millisecond}
	err := c.Confirm(context.Background(), "b", "v3")
	var f *Failure
	if !errors.As(err, &f) || !slices.Equal(f.Lines, []string{"loading v3", "panic: bad weights"}) {
		t.Fatalf("Confirm = %#v, want a *Failure with the unit's lines", err)
	}
	if err.Error() != "crash_loop: unit demo.service: exited before READY=1" || f.LogLines()[1] != "panic: bad weights" {
		t.Fatalf("text %q: want the verdict's text unchanged", err)
	}
	if err := c.Restore(context.Background(), "a", "v1"); !errors.As(err, &f) {
		t.Fatalf("Restore = %v, want a *Failure too", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Confirm(ctx, "b", "v3"); errors.As(err, &f) {
		t.Fatalf("a stopped confirmation got output lines: %v", f.Lines)
	}
}
