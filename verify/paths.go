package verify

import (
	"path"
	"strings"
	"unicode"
)

// MetaDir is the directory inside every slot that belongs to modelslot, not to the
// model: it holds the manifest the slot was verified against. A model may not ship
// files under it.
const MetaDir = ".modelslot"

// maxPathLen bounds a single path; Linux's PATH_MAX is 4096 and a slot lives below
// a state directory, so a model path has to be well under it.
const maxPathLen = 1024

// CheckPath reports whether p may name a file inside a model tree: relative,
// slash-separated, already clean, no "." or ".." element, no control characters
// or backslashes, and not under MetaDir.
func CheckPath(p string) error {
	switch {
	case p == "":
		return rejectf("empty path")
	case len(p) > maxPathLen:
		return rejectf("path %.40q…: longer than %d bytes", p, maxPathLen)
	case strings.HasPrefix(p, "/"):
		return rejectf("path %q: absolute paths are not allowed", p)
	case strings.ContainsRune(p, '\\'):
		return rejectf("path %q: backslashes are not allowed", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return rejectf("path %q: control characters are not allowed", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return rejectf("path %q: '..' is not allowed", p)
		}
		if elem == "." || elem == "" {
			return rejectf("path %q: not in clean form (want %q)", p, path.Clean(p))
		}
	}
	if p == MetaDir || strings.HasPrefix(p, MetaDir+"/") {
		return rejectf("path %q: %s/ is reserved for modelslot", p, MetaDir)
	}
	return nil
}

// checkTree reports duplicate paths and a file that is also used as a directory
// ("a" and "a/b"), which no filesystem can hold.
func checkTree(paths []string) error {
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			return rejectf("path %q: listed twice", p)
		}
		seen[p] = true
	}
	for _, p := range paths {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if seen[dir] {
				return rejectf("path %q: its parent %q is a file", p, dir)
			}
		}
	}
	return nil
}
