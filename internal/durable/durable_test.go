package durable

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// WriteFile replaces the file, never rewrites it in place: a reader that
// opened the old file keeps reading the old content whole (os.WriteFile, which
// truncates the same inode, would show it the new or a torn mix), the name
// names a new inode, and no temp file is left.
func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	if err := WriteFile(name, []byte("first"), 0o640); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	before, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(name, []byte("second, longer"), 0o640); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(old); err != nil || string(got) != "first" {
		t.Fatalf("a reader of the old file read %q, %v; want the old content whole", got, err)
	}
	after, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Fatal("the file was rewritten in place, not replaced")
	}
	if got, err := os.ReadFile(name); err != nil || string(got) != "second, longer" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if after.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", after.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestSymlinkReplacesExistingLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "current")
	for _, target := range []string{"slots/a", "slots/b", "slots/a"} {
		if err := Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(link); got != target {
			t.Fatalf("link -> %q, want %q", got, target)
		}
	}
	// A stale temp link from a crash does not block the next swap.
	os.Symlink("junk", filepath.Join(dir, ".current.new"))
	if err := Symlink("slots/b", link); err != nil {
		t.Fatalf("swap with a stale temp link: %v", err)
	}
	if err := RemoveLink(link); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLink(link); err != nil {
		t.Fatalf("removing an absent link must succeed: %v", err)
	}
}

// BenchmarkLinkSwap measures one durable swap: symlink under a temp name,
// rename over the link, fsync of the directory.
func BenchmarkLinkSwap(b *testing.B) {
	dir := b.TempDir()
	link := filepath.Join(dir, "current")
	targets := []string{"slots/a", "slots/b"}
	for i := 0; b.Loop(); i++ {
		if err := Symlink(targets[i%2], link); err != nil {
			b.Fatal(err)
		}
	}
}
