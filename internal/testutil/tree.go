package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TreeHash describes the tree at root, one line per entry (path, type,
// permission bits, and the sha256 of a file's content or a link's target),
// without following links. Two calls return the same text exactly when
// nothing under root was created, removed, changed or re-pointed, so a test
// can prove that a hostile input touched nothing outside the state
// directory. Modification times are left out: a read must not count.
func TreeHash(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, name)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var what string
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(name)
			if err != nil {
				return err
			}
			what = "-> " + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			what = hex.EncodeToString(sum[:])
		}
		lines = append(lines, fmt.Sprintf("%s %s %04o %s", rel, d.Type(), fi.Mode().Perm(), what))
		return nil
	})
	OK(t, err)
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// SentinelTree fills dir with a few files and directories that no modelslot
// command may touch (among them a work/ directory, which a staging dir
// linked here would clear) and returns its TreeHash.
func SentinelTree(t testing.TB, dir string) string {
	t.Helper()
	for name, data := range map[string]string{
		"keep.txt":          "sentinel\n",
		"work/precious.bin": "do not delete\n",
		"slots/a/x":         "not a slot\n",
		"nested/deep/file":  "still here\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		OK(t, os.MkdirAll(filepath.Dir(p), 0o755))
		OK(t, os.WriteFile(p, []byte(data), 0o644))
	}
	return TreeHash(t, dir)
}
