package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
)

// interrupted is an install of v2 into a real slot store that failed after
// staging some of v2 (a chunk the server keeps corrupt), with the server
// then fixed: the next install resumes from staging/work/<hash>/.
type interrupted struct {
	s    *slots.Store
	r    *repo
	work string // staging/work/<hash>
}

func newInterrupted(t *testing.T) *interrupted {
	t.Helper()
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	testutil.OK(t, err)
	t.Cleanup(func() { s.Close() })
	if _, err := storeInstall(t, s, r); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "weights.bin", randomBytes(400<<10, 9))
	res := r.publish(dir, "v2")
	f, _ := res.Manifest.Lookup("weights.bin")
	name := r.chunkFile(f.Chunks[len(f.Chunks)-1].SHA256)
	good, err := os.ReadFile(name)
	testutil.OK(t, err)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	testutil.OK(t, os.WriteFile(name, bad, 0o644))
	if _, err := storeInstall(t, s, r); !errors.Is(err, ErrDownload) {
		t.Fatalf("the first attempt = %v, want a download failure", err)
	}
	testutil.OK(t, os.WriteFile(name, good, 0o644))
	works, _ := filepath.Glob(filepath.Join(s.StagingPath(), "work", "*"))
	if len(works) != 1 {
		t.Fatalf("staging after the interrupted install: %v, want one work directory", works)
	}
	for _, n := range []string{"journal", "files/weights.bin"} {
		if _, err := os.Stat(filepath.Join(works[0], n)); err != nil {
			t.Fatalf("the interrupted install left no %s: %v", n, err)
		}
	}
	return &interrupted{s: s, r: r, work: works[0]}
}

// resume runs the next install, bounded in time (boundedInstall).
func (in *interrupted) resume(t *testing.T, unblock func()) error {
	t.Helper()
	return boundedInstall(t, in.s, in.r, unblock)
}

// boundedInstall is storeInstall bounded in time: an open that blocks on a
// FIFO must fail the test, not hang it. After the time, unblock is called
// until the install ends, then the test fails.
func boundedInstall(t *testing.T, s *slots.Store, r *repo, unblock func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := storeInstall(t, s, r)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		for {
			unblock()
			select {
			case <-done:
				t.Fatal("the install blocked")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// unblockFIFO opens both ends of the FIFO name for a moment: an open blocked
// on either side returns, and a read then ends.
func unblockFIFO(name string) func() {
	return func() {
		if f, err := os.OpenFile(name, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	}
}

func (in *interrupted) activeStillV1(t *testing.T) {
	t.Helper()
	if m, err := in.s.VerifySlot(context.Background(), in.s.State().Active, 1); err != nil || m.Version != "v1" {
		t.Fatalf("the active slot after the refused install: %v, %v; want v1, verifying", m, err)
	}
}

// A resumed install resolves every file of its work directory beneath the
// staging directory without following a link (#12): an entry swapped for a
// link to somewhere else between two attempts is refused with an error
// naming it, nothing is written or truncated where the link points, and the
// active slot still serves.
func TestResumedInstallRefusesALinkInTheWorkDirectory(t *testing.T) {
	for _, tt := range []struct {
		name  string
		entry string // in the work directory
		to    string // in the outside tree
	}{
		{"files directory", "files", "."},
		{"staged file", "files/weights.bin", "keep.txt"},
		{"journal", "journal", "work/precious.bin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := newInterrupted(t)
			outside := t.TempDir()
			sum := testutil.SentinelTree(t, outside)
			entry := filepath.Join(in.work, filepath.FromSlash(tt.entry))
			testutil.OK(t, os.RemoveAll(entry))
			testutil.OK(t, os.Symlink(filepath.Join(outside, tt.to), entry))
			err := in.resume(t, func() {})
			if !errors.Is(err, durable.ErrUnsafe) || !strings.Contains(err.Error(), entry) {
				t.Fatalf("install through a link at %s = %v, want an ErrUnsafe naming it", tt.entry, err)
			}
			if got := testutil.TreeHash(t, outside); got != sum {
				t.Fatalf("the link's target changed:\n%s\nwant:\n%s", got, sum)
			}
			in.activeStillV1(t)
		})
	}
}

// A FIFO in place of the journal or a staged file is refused at once: an
// open(2) of a FIFO without O_NONBLOCK waits for a writer forever, where no
// signal or context ends it.
func TestResumedInstallRefusesAFIFOInTheWorkDirectory(t *testing.T) {
	for _, entry := range []string{"journal", "files/weights.bin"} {
		t.Run(entry, func(t *testing.T) {
			in := newInterrupted(t)
			name := filepath.Join(in.work, filepath.FromSlash(entry))
			testutil.OK(t, os.Remove(name))
			testutil.OK(t, syscall.Mkfifo(name, 0o644))
			err := in.resume(t, unblockFIFO(name))
			if !errors.Is(err, durable.ErrUnsafe) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "a FIFO") {
				t.Fatalf("install with a FIFO at %s = %v, want an ErrUnsafe naming it", entry, err)
			}
			in.activeStillV1(t)
		})
	}
}

// The active slot's files are reused through the same kind of open: a file
// of the slot replaced by a FIFO (v2 reuses head.bin whole, weights.bin by
// chunks) is refused at once, naming it, instead of blocking the install.
func TestInstallRefusesAFIFOInTheActiveSlot(t *testing.T) {
	for _, file := range []string{"head.bin", "weights.bin"} {
		t.Run(file, func(t *testing.T) {
			r := newRepo(t)
			dir := model(t, 1)
			r.publish(dir, "v1")
			s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
			testutil.OK(t, err)
			defer s.Close()
			if _, err := storeInstall(t, s, r); err != nil {
				t.Fatal(err)
			}
			w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
			copy(w[100<<10:], "changed")
			writeFile(t, dir, "weights.bin", w)
			r.publish(dir, "v2")
			name := filepath.Join(s.SlotDir(s.State().Active), file)
			testutil.OK(t, os.Remove(name))
			testutil.OK(t, syscall.Mkfifo(name, 0o644))
			err = boundedInstall(t, s, r, unblockFIFO(name))
			if !errors.Is(err, durable.ErrUnsafe) || !strings.Contains(err.Error(), name) {
				t.Fatalf("install reusing a slot with a FIFO at %s = %v, want an ErrUnsafe naming it", file, err)
			}
		})
	}
}

// openUnder counts this process's descriptors of dir and what is below it.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	testutil.OK(t, err)
	var open []string
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil &&
			(target == dir || strings.HasPrefix(target, dir+"/")) {
			open = append(open, target)
		}
	}
	return open
}

// A long-running agent installs many times: an install, its staging
// directory, work files and reused slots included, leaves no descriptor of
// the state directory open beyond the store's own.
func TestInstallLeavesNoDescriptorOpen(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	state := t.TempDir()
	s, err := slots.Open(context.Background(), slots.Config{Dir: state, Model: "demo"}, "test")
	testutil.OK(t, err)
	defer s.Close()
	before := openUnder(t, state)
	for i, v := range []string{"v1", "v2", "v3"} {
		if i > 0 {
			w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
			copy(w[100<<10:], v)
			writeFile(t, dir, "weights.bin", w)
			r.publish(dir, v)
		}
		if _, err := storeInstall(t, s, r); err != nil {
			t.Fatal(err)
		}
		if got := openUnder(t, state); len(got) != len(before) {
			t.Fatalf("after installing %s, open under the state directory: %v; before: %v", v, got, before)
		}
	}
}

// Format 2 keeps the chunk index and the locations in the work directory
// too: a work directory, locations or partial index that is a link when the
// install starts is refused, naming it; an index that is a link is replaced
// (by rename) with the one fetched; nothing is written where a link points.
func TestFormat2InstallRefusesALinkInTheWorkDirectory(t *testing.T) {
	for _, entry := range []string{".", IndexFile, locFile, IndexFile + ".part"} {
		t.Run(entry, func(t *testing.T) {
			r := newRepo2(t)
			m := r.publish2(bigModel(t, 1, 256<<10), "v1")
			staging := filepath.Join(t.TempDir(), "staging")
			st, err := OpenStaging(staging)
			testutil.OK(t, err)
			w, err := st.workFor(m)
			testutil.OK(t, err)
			st.Close()
			outside := t.TempDir()
			sum := testutil.SentinelTree(t, outside)
			name, to := filepath.Join(w.dir, entry), filepath.Join(outside, "keep.txt")
			if entry == "." {
				name, to = w.dir, outside
			} else {
				testutil.OK(t, os.MkdirAll(w.dir, 0o755))
			}
			testutil.OK(t, os.Symlink(to, filepath.Clean(name)))
			_, _, _, err = install2(t, fastClient(), r.channelURL(), r.trusted(), nil, staging)
			if entry == IndexFile {
				// Not the pinned index (it cannot be read): fetched again into
				// index.idx.part and renamed over the link, which goes as an
				// entry, never followed.
				if fi, lerr := os.Lstat(name); err != nil || lerr != nil || !fi.Mode().IsRegular() {
					t.Fatalf("format-2 install with a link at %s = %v; then %v, %v; want the link replaced by the index", entry, err, fi, lerr)
				}
			} else if !errors.Is(err, durable.ErrUnsafe) || !strings.Contains(err.Error(), filepath.Clean(name)) {
				t.Fatalf("format-2 install with a link at %s = %v, want an ErrUnsafe naming it", entry, err)
			}
			if got := testutil.TreeHash(t, outside); got != sum {
				t.Fatalf("the link's target changed:\n%s\nwant:\n%s", got, sum)
			}
		})
	}
}
