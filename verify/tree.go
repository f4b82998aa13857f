package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// VerifyTree checks that the directory root holds exactly the files of m: each a
// regular file with the listed size, sha256 and permission bits (write bits are
// ignored: slots are read-only), and nothing else outside MetaDir. Files are
// hashed on up to workers goroutines. A difference is a *MismatchError.
//
// root itself must be a real directory, not a link: the walk would not enter a
// linked root while each listed file was checked through it, so a link to a
// copy holding extra files would pass.
func VerifyTree(ctx context.Context, root string, m *Manifest, workers int) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !fi.IsDir() {
		return &MismatchError{Path: ".", Reason: fmt.Sprintf("%s is not a real directory (%s); a slot is never a link", root, fi.Mode().Type())}
	}
	if err := checkNoExtra(root, m); err != nil {
		return err
	}
	return forEachFile(ctx, m.Files, workers, func(ctx context.Context, i int) error {
		f := m.Files[i]
		return VerifyFile(ctx, filepath.Join(root, filepath.FromSlash(f.Path)), f)
	})
}

// VerifyFile checks one file against its manifest entry: a regular file with the
// listed size, permission bits (write bits ignored) and sha256.
func VerifyFile(ctx context.Context, name string, f File) error {
	fi, err := os.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return &MismatchError{Path: f.Path, Reason: "missing"}
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return &MismatchError{Path: f.Path, Reason: "not a regular file (" + fi.Mode().Type().String() + ")"}
	}
	if fi.Size() != f.Size {
		return &MismatchError{Path: f.Path, Reason: fmt.Sprintf("size %d, manifest says %d", fi.Size(), f.Size)}
	}
	if got, want := fi.Mode().Perm()&^0o222, fs.FileMode(f.Mode)&^0o222; got != want {
		return &MismatchError{Path: f.Path, Reason: fmt.Sprintf("mode %04o, manifest says %04o", got, want)}
	}
	sum, n, err := HashFile(ctx, name)
	if err != nil {
		return fmt.Errorf("verify %s: %w", f.Path, err)
	}
	if n != f.Size || sum != f.SHA256 {
		return &MismatchError{Path: f.Path, Reason: fmt.Sprintf("content changed: sha256 %s, manifest says %s", sum, f.SHA256)}
	}
	return nil
}

// checkNoExtra walks root and reports every entry that the manifest does not
// list (or a file where a directory belongs), ignoring MetaDir: the first by
// name in Path, all of them (up to maxExtraNamed) in Reason.
func checkNoExtra(root string, m *Manifest) error {
	want := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		want[f.Path] = true
	}
	var extra []string
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("verify: walk %s: %w", name, err)
		}
		rel, _ := filepath.Rel(root, name)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case rel == MetaDir && d.IsDir():
			return fs.SkipDir
		case d.IsDir():
			return nil
		case !want[rel]:
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil || len(extra) == 0 {
		return err
	}
	return &MismatchError{Path: extra[0], Reason: "not in the manifest" + namedExtras(extra)}
}

// maxExtraNamed bounds how many extra files one error names.
const maxExtraNamed = 20

func namedExtras(extra []string) string {
	if len(extra) == 1 {
		return ""
	}
	quoted := make([]string, 0, min(len(extra), maxExtraNamed))
	for _, e := range extra[:min(len(extra), maxExtraNamed)] {
		quoted = append(quoted, fmt.Sprintf("%q", e))
	}
	more := ""
	if len(extra) > maxExtraNamed {
		more = fmt.Sprintf(" and %d more", len(extra)-maxExtraNamed)
	}
	return fmt.Sprintf(" (%d extra files: %s%s)", len(extra), strings.Join(quoted, ", "), more)
}

// Scan builds an unsigned manifest for the directory dir: every regular file is
// listed with its size, permission bits and sha256. Symbolic links, devices,
// sockets and pipes are refused, and so is any path CheckPath refuses. It is how
// `install --insecure` turns a development directory into something a slot can
// be verified against.
func Scan(ctx context.Context, dir, model, version string, workers int) (*Manifest, error) {
	m := &Manifest{Schema: SchemaInline, Model: model, Version: version, Insecure: true, Created: time.Now().UTC()}
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
		rel, _ := filepath.Rel(dir, name)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return rejectf("%s: %s is not a regular file; a model holds only regular files and directories", rel, d.Type())
		}
		if err := CheckPath(rel); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
		m.Files = append(m.Files, File{Path: rel, Size: fi.Size(), Mode: FileMode(fi.Mode().Perm())})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = forEachFile(ctx, m.Files, workers, func(ctx context.Context, i int) error {
		// Each goroutine writes only its own entry, so no lock is needed.
		sum, _, err := HashFile(ctx, filepath.Join(dir, filepath.FromSlash(m.Files[i].Path)))
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		m.Files[i].SHA256 = sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.Probe = defaultProbe(m)
	return m, m.Validate()
}

// Default probe files: a model directory may carry them (DESIGN.md § Command line).
const (
	DefaultProbeInput    = "probe/input.json"
	DefaultProbeExpected = "probe/expected.json"
	// DefaultProbeTolerances is optional: per-field tolerances of the answer.
	DefaultProbeTolerances = "probe/tolerances.json"
)

func defaultProbe(m *Manifest) *Probe {
	_, in := m.Lookup(DefaultProbeInput)
	_, out := m.Lookup(DefaultProbeExpected)
	if !in || !out {
		return nil
	}
	p := &Probe{Input: DefaultProbeInput, Expected: DefaultProbeExpected}
	if _, ok := m.Lookup(DefaultProbeTolerances); ok {
		p.Tolerances = DefaultProbeTolerances
	}
	return p
}
