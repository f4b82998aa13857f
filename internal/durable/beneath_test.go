package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Every check runs twice: with openat2 (the kernel's RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) and with the O_NOFOLLOW walk used before Linux 5.6,
// which must refuse exactly the same entries.
func bothResolvers(t *testing.T, fn func(t *testing.T)) {
	for _, walk := range []bool{false, true} {
		name := map[bool]string{false: "openat2", true: "walk"}[walk]
		t.Run(name, func(t *testing.T) {
			if !walk && openat2Missing() {
				t.Skip("this kernel has no openat2")
			}
			forceWalk = walk
			t.Cleanup(func() { forceWalk = false })
			fn(t)
		})
	}
}

func hostileRoot(t *testing.T) (*Root, string) {
	t.Helper()
	dir, outside := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "slots", "a"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "slots", "a", "f"), []byte("inside"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "state.json"), []byte("{}"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "staging")))                     // a linked directory
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "ln"))) // a linked file
	must(os.Symlink("a", filepath.Join(dir, "slots", "b")))                      // a relative link inside
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	r, err := OpenRoot(dir)
	must(err)
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func TestRootRefusesLinksAndSpecialFiles(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, dir := hostileRoot(t)
		tests := []struct {
			rel  string
			dir  bool
			want string // "" = accepted; "missing" = fs.ErrNotExist
		}{
			{"slots", true, ""},
			{"slots/a", true, ""},
			{"slots/a/f", false, ""},
			{"state.json", false, ""},
			{"state.json", true, "a regular file, not a directory"},
			{"slots", false, "a directory, not a regular file"},
			{"staging", true, "staging is a symbolic link"},
			{"staging/secret", false, "staging is a symbolic link"},
			{"ln", false, "ln is a symbolic link"},
			{"slots/b", true, "slots/b is a symbolic link"},
			{"slots/b/f", false, "slots/b is a symbolic link"},
			{"fifo", false, "a FIFO, not a regular file"},
			{"state.json/x", false, "not a directory"},
			{"nothing", true, "missing"},
		}
		for _, tt := range tests {
			err := r.Check(tt.rel, tt.dir)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check(%q) = %v, want ok", tt.rel, err)
			case tt.want == "missing" && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("Check(%q) = %v, want fs.ErrNotExist", tt.rel, err)
			case tt.want != "" && tt.want != "missing" && (!errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check(%q) = %v, want an ErrUnsafe saying %q", tt.rel, err, tt.want)
			case err != nil && tt.want != "missing" && !strings.Contains(err.Error(), dir):
				t.Errorf("Check(%q) = %v, which does not name the path", tt.rel, err)
			}
		}
	})
}

func TestRootReadFileNeverFollowsOrBlocks(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, _ := hostileRoot(t)
		if b, err := r.ReadFile("slots/a/f", 100); err != nil || string(b) != "inside" {
			t.Fatalf("ReadFile = %q, %v", b, err)
		}
		for _, rel := range []string{"ln", "staging/secret", "slots/b/f", "fifo"} {
			if b, err := r.ReadFile(rel, 100); !errors.Is(err, ErrUnsafe) {
				t.Errorf("ReadFile(%q) = %q, %v, want ErrUnsafe", rel, b, err)
			}
		}
		if _, err := r.ReadFile("state.json", 1); err == nil || !strings.Contains(err.Error(), "more than the 1") {
			t.Errorf("oversized file = %v, want a refusal", err)
		}
	})
}

func TestReadRegularFileRefusesFIFOAndLink(t *testing.T) {
	_, dir := hostileRoot(t)
	for _, n := range []string{"fifo", "ln"} {
		if _, err := ReadRegularFile(filepath.Join(dir, n), 100); !errors.Is(err, ErrUnsafe) {
			t.Errorf("ReadRegularFile(%s) = %v, want ErrUnsafe", n, err)
		}
	}
}
