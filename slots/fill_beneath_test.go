package slots_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// A directory of the fill swapped for a link after it was made (by someone
// with write access to the state dir, between two of modelslot's steps) must
// not redirect the next file written into it: every file is made beneath the
// fill's directory at the moment of use, and the link is refused.
func TestFillRefusesADirectorySwappedForALink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	before := testutil.TreeHash(t, outside)
	s := openStore(t, dir, "")
	m := manifestFor(t, "v1", map[string]string{"sub/a": "a", "sub/b": "b", "sub/c": "c"})
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{}
	for i, f := range m.Files {
		files[f.Path] = i
	}
	if err := fill.WriteFile(ctx, m.Files[files["sub/a"]], strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(fill.Dir(), "sub")
	if err := os.Rename(sub, sub+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, sub); err != nil {
		t.Fatal(err)
	}
	err = fill.WriteFile(ctx, m.Files[files["sub/b"]], strings.NewReader("b"))
	if !errors.Is(err, durable.ErrUnsafe) {
		t.Fatalf("WriteFile through a swapped directory = %v, want ErrUnsafe", err)
	}
	if _, err := fill.CreateFile(m.Files[files["sub/c"]]); !errors.Is(err, durable.ErrUnsafe) {
		t.Fatalf("CreateFile through a swapped directory = %v, want ErrUnsafe", err)
	}
	sr, rel := staged(t, "c")
	if err := fill.Adopt(m.Files[files["sub/c"]], sr, rel); !errors.Is(err, durable.ErrUnsafe) {
		t.Fatalf("Adopt into a swapped directory = %v, want ErrUnsafe", err)
	}
	if _, err := os.Stat(filepath.Join(sr.Name(), rel)); err != nil {
		t.Fatalf("a refused Adopt moved the staged file: %v", err)
	}
	if after := testutil.TreeHash(t, outside); after != before {
		t.Fatalf("the directory the link points to changed:\nbefore %s\nafter  %s", before, after)
	}
	if err := fill.Abort(); err != nil {
		t.Fatal(err)
	}
	if after := testutil.TreeHash(t, outside); after != before {
		t.Fatal("Abort deleted through the link")
	}
}

// A file handed out by CreateFile and replaced by a link to an outside copy
// with the right bytes must fail the commit: the commit reopens each file
// beneath the fill without following a link, where a path-based hash would
// follow it and pass.
func TestCommitRefusesAFileSwappedForALink(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	s := openStore(t, dir, "")
	m := manifestFor(t, "v1", map[string]string{"w.bin": "weights"})
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := fill.CreateFile(m.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	out.WriteString("weights")
	out.Close()
	copyOutside := filepath.Join(outside, "w.bin")
	os.WriteFile(copyOutside, []byte("weights"), 0o644)
	name := filepath.Join(fill.Dir(), "w.bin")
	os.Remove(name)
	if err := os.Symlink(copyOutside, name); err != nil {
		t.Fatal(err)
	}
	if err := fill.Commit(ctx); !errors.Is(err, durable.ErrUnsafe) {
		t.Fatalf("Commit with a file swapped for a link = %v, want ErrUnsafe", err)
	}
	if st := s.State(); st.Slots[slots.A].Status != slots.Empty {
		t.Fatalf("after the refused commit the slot must be empty: %+v", st.Slots[slots.A])
	}
	if fi, err := os.Stat(copyOutside); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("the outside file was touched (sealed read-only through the link?): %v %v", fi.Mode(), err)
	}
}

// Adopt renames a staged file in; the commit verifies it like any other.
func TestAdoptedFileIsVerifiedAtCommit(t *testing.T) {
	for _, tc := range []struct {
		content string
		ok      bool
	}{{"weights", true}, {"wrong!!", false}} {
		s := openStore(t, t.TempDir(), "")
		m := manifestFor(t, "v1", map[string]string{"d/w.bin": "weights"})
		fill, err := s.BeginInstall(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		sr, rel := staged(t, tc.content)
		if err := fill.Adopt(m.Files[0], sr, rel); err != nil {
			t.Fatal(err)
		}
		err = fill.Commit(ctx)
		if tc.ok != (err == nil) {
			t.Fatalf("content %q: Commit = %v", tc.content, err)
		}
	}
}

// A file whose bytes do not match is removed from the fill (beneath it, not
// by its path) and the mismatch is returned.
func TestWriteFileMismatchRemovesTheFile(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	m := manifestFor(t, "v1", map[string]string{"d/w.bin": "weights"})
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Abort()
	var mm *verify.MismatchError
	if err := fill.WriteFile(ctx, m.Files[0], strings.NewReader("wrong!!")); !errors.As(err, &mm) {
		t.Fatalf("WriteFile of other bytes = %v, want a mismatch", err)
	}
	if _, err := os.Lstat(filepath.Join(fill.Dir(), "d", "w.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the mismatched file after WriteFile: %v, want it removed", err)
	}
}

// The slot's metadata files are created with their mode, read-only (0444
// less the umask); Root.Create used to drop the mode and make them 0000.
func TestSlotMetadataIsReadOnlyForAll(t *testing.T) {
	s := openStore(t, t.TempDir(), "")
	m := manifestFor(t, "v1", map[string]string{"w": "x"})
	fill, err := s.BeginInstall(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	testutil.OK(t, fill.WriteFile(ctx, m.Files[0], strings.NewReader("x")))
	testutil.OK(t, fill.Commit(ctx))
	fi, err := os.Stat(filepath.Join(s.SlotDir(slots.A), verify.MetaDir, "manifest.json"))
	// 0444 less the umask: readable, never writable.
	if err != nil || fi.Mode().Perm()&0o400 == 0 || fi.Mode().Perm()&0o222 != 0 {
		t.Fatalf("the slot's manifest.json: %v, %v; want it read-only (0444 less the umask)", fi, err)
	}
}
