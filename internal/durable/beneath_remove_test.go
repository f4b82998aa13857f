package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// outsideTree is a tree outside the root that links point at, and its
// content as a string, to prove nothing changed it.
func outsideTree(t *testing.T) (string, func() string) {
	t.Helper()
	out := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(out, "d", "e"), 0o755))
	must(t, os.WriteFile(filepath.Join(out, "secret"), []byte("outside"), 0o644))
	must(t, os.WriteFile(filepath.Join(out, "d", "e", "f"), []byte("deep"), 0o644))
	snap := func() string {
		var lines []string
		filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				lines = append(lines, p+" "+err.Error())
				return nil
			}
			fi, _ := d.Info()
			b, _ := os.ReadFile(p)
			lines = append(lines, p+" "+fi.Mode().String()+" "+string(b))
			return nil
		})
		return strings.Join(lines, "\n")
	}
	return out, snap
}

func TestRootOpenFileCreatesKeepsAndRefuses(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, dir := hostileRoot(t)
		out, err := r.OpenFile("slots/a/new", os.O_WRONLY|os.O_CREATE, 0o640)
		must(t, err)
		out.WriteString("new")
		out.Close()
		if fi, err := os.Stat(filepath.Join(dir, "slots", "a", "new")); err != nil || fi.Mode().Perm() != 0o640&^umask() {
			t.Fatalf("created file: %v, %v; want mode %v", fi, err, fs.FileMode(0o640&^umask()))
		}
		f, err := r.OpenFile("slots/a/f", os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644) // an existing file is kept
		must(t, err)
		f.WriteString("+")
		f.Close()
		if b, _ := os.ReadFile(filepath.Join(dir, "slots", "a", "f")); string(b) != "inside+" {
			t.Fatalf("existing file after OpenFile = %q", b)
		}
		must(t, os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling")))
		for _, rel := range []string{"ln", "staging/secret", "staging/new", "slots/b/f", "slots/b/new", "dangling"} {
			for _, fl := range []int{os.O_RDONLY, os.O_WRONLY | os.O_CREATE, os.O_RDWR | os.O_CREATE | os.O_TRUNC} {
				if f, err := r.OpenFile(rel, fl, 0o644); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), dir) {
					f.Close()
					t.Errorf("OpenFile(%q, %#o) = %v, want an ErrUnsafe naming the path", rel, fl, err)
				}
			}
		}
		if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the dangling link's target was created: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(filepath.Dir(mustReadlink(t, filepath.Join(dir, "ln"))), "secret")); string(b) != "outside" {
			t.Errorf("the link's target = %q, want it unchanged", b)
		}
	})
}

func mustReadlink(t *testing.T, name string) string {
	t.Helper()
	s, err := os.Readlink(name)
	must(t, err)
	return s
}

func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}

// A FIFO where a file is expected is refused at once, for reading and for
// writing (an open of a FIFO without O_NONBLOCK waits for the other end).
func TestRootOpenFileFIFONeverBlocks(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, dir := hostileRoot(t)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, fl := range []int{os.O_RDONLY, os.O_WRONLY | os.O_CREATE | os.O_APPEND, os.O_RDWR} {
				if f, err := r.OpenFile("fifo", fl, 0o644); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "a FIFO") {
					f.Close()
					t.Errorf("OpenFile(fifo, %#o) = %v, want ErrUnsafe saying a FIFO", fl, err)
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			// Unblock the open (a writer, then a reader) before failing.
			if w, err := os.OpenFile(filepath.Join(dir, "fifo"), os.O_RDWR, 0); err == nil {
				defer w.Close()
			}
			<-done
			t.Fatal("OpenFile blocked on a FIFO")
		}
	})
}

func TestRootRenameStaysBeneath(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, dir := hostileRoot(t)
		outside, snap := outsideTree(t)
		before := snap()
		must(t, os.Symlink(outside, filepath.Join(dir, "slots", "a", "out")))
		must(t, r.Rename("slots/a/f", "g"))
		if b, _ := os.ReadFile(filepath.Join(dir, "g")); string(b) != "inside" {
			t.Fatalf("renamed file = %q", b)
		}
		for _, tt := range [][2]string{
			{"staging/secret", "took"},  // from through a link
			{"slots/a/out/secret", "x"}, // from through a link in a middle component
			{"g", "staging/g"},          // to through a link
			{"g", "slots/a/out/d/e/f"},  // to through a link in a middle component
			{"slots/b/f", "slots/a/f2"}, // from through a relative link
		} {
			if err := r.Rename(tt[0], tt[1]); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Rename(%q, %q) = %v, want ErrUnsafe", tt[0], tt[1], err)
			}
		}
		// A link as the last component is moved as a link, never followed.
		must(t, r.Rename("ln", "slots/ln"))
		if fi, err := os.Lstat(filepath.Join(dir, "slots", "ln")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("renamed link = %v, %v", fi, err)
		}
		if got := snap(); got != before {
			t.Fatalf("the outside tree changed:\n%s\nwant:\n%s", got, before)
		}
		other, err := OpenRoot(t.TempDir())
		must(t, err)
		defer other.Close()
		must(t, r.RenameTo("g", other, "h"))
		if b, _ := os.ReadFile(filepath.Join(other.Name(), "h")); string(b) != "inside" {
			t.Fatalf("RenameTo another root = %q", b)
		}
	})
}

// RemoveAll removes a tree holding links, FIFOs and links to directories:
// every link goes as an entry, what it points to stays.
func TestRootRemoveAllNeverFollowsALink(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, dir := hostileRoot(t)
		outside, snap := outsideTree(t)
		before := snap()
		w := filepath.Join(dir, "work")
		must(t, os.MkdirAll(filepath.Join(w, "h", "files", "sub"), 0o755))
		must(t, os.WriteFile(filepath.Join(w, "h", "files", "sub", "x"), []byte("x"), 0o644))
		must(t, os.Symlink(outside, filepath.Join(w, "h", "files", "dirlink")))
		must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(w, "h", "journal")))
		must(t, os.Symlink(filepath.Join(outside, "gone"), filepath.Join(w, "dangling")))
		must(t, syscall.Mkfifo(filepath.Join(w, "h", "fifo"), 0o644))
		must(t, r.RemoveAll("work"))
		if _, err := os.Lstat(w); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("work after RemoveAll: %v", err)
		}
		// A link as rel itself is removed as a link; a link on the way is refused.
		must(t, r.RemoveAll("staging"))
		if _, err := os.Lstat(filepath.Join(dir, "staging")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the staging link after RemoveAll: %v", err)
		}
		must(t, os.Symlink(outside, filepath.Join(dir, "slots", "a", "out")))
		if err := r.RemoveAll("slots/a/out/d"); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("RemoveAll through a link = %v, want ErrUnsafe", err)
		}
		if err := r.RemoveAll("slots/b/f"); !errors.Is(err, ErrUnsafe) {
			t.Fatalf("RemoveAll through a relative link = %v, want ErrUnsafe", err)
		}
		must(t, r.RemoveAll("nothing/here"))
		must(t, r.RemoveAll("nothing"))
		if got := snap(); got != before {
			t.Fatalf("the outside tree changed:\n%s\nwant:\n%s", got, before)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "slots", "a", "f")); string(b) != "inside" {
			t.Fatalf("a file outside rel was touched: %q", b)
		}
	})
}

func TestRootSyncDir(t *testing.T) {
	bothResolvers(t, func(t *testing.T) {
		r, _ := hostileRoot(t)
		must(t, r.SyncDir("."))
		must(t, r.SyncDir("slots/a"))
		if err := r.SyncDir("staging"); enabled && !errors.Is(err, ErrUnsafe) {
			t.Fatalf("SyncDir through a link = %v, want ErrUnsafe", err)
		}
	})
}
