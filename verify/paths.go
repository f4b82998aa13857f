package verify

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MetaDir is the directory inside every slot that belongs to modelslot, not to the
// model: it holds the manifest the slot was verified against. A model may not ship
// files under it.
const MetaDir = ".modelslot"

// maxPathLen bounds a single path; Linux's PATH_MAX is 4096 and a slot lives below
// a state directory, so a model path has to be well under it.
const maxPathLen = 1024

// maxElemLen is NAME_MAX on every Linux filesystem a slot may live on: a
// longer element would be refused by the staging filesystem halfway through an
// install ("file name too long"), so it is refused at policy time instead.
const maxElemLen = 255

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
	case !utf8.ValidString(p):
		return rejectf("path %q: not valid UTF-8", p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return rejectf("path %q: control characters are not allowed", p)
	case strings.IndexFunc(p, deceptive) >= 0:
		r, _ := utf8.DecodeRuneInString(p[strings.IndexFunc(p, deceptive):])
		return rejectf("path %q: invisible or bidirectional format character U+%04X is not allowed", p, r)
	}
	for _, elem := range strings.Split(p, "/") {
		if len(elem) > maxElemLen {
			return rejectf("path %.60q…: element of %d bytes, more than the %d a file name may have", p, len(elem), maxElemLen)
		}
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

// deceptive reports the characters that make a file name display as something
// it is not, or not at all, in a log or a terminal: every Unicode format
// control (category Cf: the bidirectional embeddings, overrides and isolates
// U+202A–U+202E and U+2066–U+2069, the marks U+200E, U+200F and U+061C,
// zero-width space U+200B, word joiner U+2060, the invisible operators
// U+2061–U+2064, the byte-order mark U+FEFF, the soft hyphen U+00AD, the
// interlinear annotation controls U+FFF9–U+FFFB, the tag characters
// U+E0001–U+E007F) and the line and paragraph separators U+2028 and U+2029.
// Zero-width non-joiner and joiner (U+200C, U+200D) are allowed: Persian and
// Indic words and emoji sequences need them, and they reorder nothing.
func deceptive(r rune) bool {
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
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
