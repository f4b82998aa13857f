package verify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		name := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestScanThenVerifyTree(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"w.bin": "weights", "sub/c.json": "{}", "probe/input.json": "[1]", "probe/expected.json": "[2]"})
	m, err := Scan(ctx, dir, "demo", "v1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 || m.Probe == nil || !m.Insecure || m.Probe.Tolerances != "" {
		t.Fatalf("Scan = %+v", m)
	}
	if err := VerifyTree(ctx, dir, m, 3); err != nil {
		t.Fatalf("VerifyTree of the scanned tree: %v", err)
	}

	tests := []struct {
		name   string
		change func(dir string)
		want   string
	}{
		{"changed byte", func(d string) { os.WriteFile(filepath.Join(d, "w.bin"), []byte("weightz"), 0o644) }, "w.bin: content changed"},
		{"truncated", func(d string) { os.WriteFile(filepath.Join(d, "w.bin"), []byte("w"), 0o644) }, "w.bin: size 1"},
		{"missing", func(d string) { os.Remove(filepath.Join(d, "sub/c.json")) }, "sub/c.json: missing"},
		{"extra", func(d string) { os.WriteFile(filepath.Join(d, "sub/extra"), nil, 0o644) }, "sub/extra: not in the manifest"},
		{"mode", func(d string) { os.Chmod(filepath.Join(d, "w.bin"), 0o755) }, "w.bin: mode 0555"},
		{"replaced by symlink", func(d string) {
			os.Remove(filepath.Join(d, "w.bin"))
			os.Symlink("/etc/hostname", filepath.Join(d, "w.bin"))
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := writeTree(t, map[string]string{"w.bin": "weights", "sub/c.json": "{}", "probe/input.json": "[1]", "probe/expected.json": "[2]"})
			tt.change(d)
			err := VerifyTree(ctx, d, m, 3)
			var me *MismatchError
			if !errors.As(err, &me) || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyTree = %v, want a mismatch %q", err, tt.want)
			}
		})
	}
}

// A model directory's probe/tolerances.json is named in the manifest's probe,
// so the confirmer finds it; an older modelslot ignores the field.
func TestScanNamesTheProbeTolerances(t *testing.T) {
	dir := writeTree(t, map[string]string{"probe/input.json": "[1]", "probe/expected.json": "[2]", "probe/tolerances.json": `{"/0": 0.1}`})
	m, err := Scan(context.Background(), dir, "demo", "v1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Probe == nil || m.Probe.Tolerances != DefaultProbeTolerances {
		t.Fatalf("Scan probe = %+v, want tolerances %s", m.Probe, DefaultProbeTolerances)
	}
	b, _ := m.Marshal()
	if back, err := ParseManifest(b); err != nil || back.Probe.Tolerances != DefaultProbeTolerances {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestScanRefusesWhatIsNotARegularFile(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"w.bin": "x"})
	os.Symlink("w.bin", filepath.Join(dir, "link"))
	if _, err := Scan(ctx, dir, "demo", "v1", 1); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "link") {
		t.Fatalf("Scan with a symlink = %v", err)
	}
	dir = writeTree(t, map[string]string{"w.bin": "x"})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(ctx, dir, "demo", "v1", 1); !errors.Is(err, ErrRejected) {
		t.Fatalf("Scan with a fifo = %v", err)
	}
}

func TestVerifyTreeStopsOnCancel(t *testing.T) {
	dir := writeTree(t, map[string]string{"w.bin": "weights"})
	m, _ := Scan(context.Background(), dir, "demo", "v1", 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := VerifyTree(ctx, dir, m, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("VerifyTree with a cancelled context = %v", err)
	}
}

// A root that is a link to a copy holding an extra file used to pass: the
// walk did not enter the linked root while each listed file checked out
// through it. The root must be a real directory, and every extra file of a
// real one is named.
func TestVerifyTreeRefusesLinkedRootAndNamesExtras(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string]string{"w.bin": "weights"})
	m, err := Scan(ctx, dir, "demo", "v1", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{"extra.bin", "sub/more.bin"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, extra)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, extra), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(t.TempDir(), "slot")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	var me *MismatchError
	if err := VerifyTree(ctx, link, m, 1); !errors.As(err, &me) || !strings.Contains(err.Error(), "not a real directory") {
		t.Fatalf("VerifyTree through a linked root = %v, want a mismatch", err)
	}
	err = VerifyTree(ctx, dir, m, 1)
	if !errors.As(err, &me) || !strings.Contains(err.Error(), `"extra.bin", "sub/more.bin"`) {
		t.Fatalf("VerifyTree with two extra files = %v, want both named", err)
	}
}
