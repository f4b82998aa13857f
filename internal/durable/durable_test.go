package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, _ := os.Stat(name)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
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
