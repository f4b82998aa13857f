package fetch

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Staging keeps an install's verified progress between attempts
// (<state>/<model>/staging/), so an install interrupted by a dropped
// connection, a restart or a power cut resumes without fetching a verified
// chunk twice. Each manifest gets a work directory holding its files as they
// are assembled — each verified chunk written straight to its place, so the
// bytes are written once, not once to a chunk store and again to the slot — and
// a journal naming the chunks written. The journal is a hint, not a proof:
// every journaled chunk is re-hashed in place before it is trusted, so neither
// the data nor the journal needs an fsync per chunk.
type Staging struct {
	dir string
}

// OpenStaging opens (creating it if needed) the staging store at dir.
// The staging directory and its work/ must be real directories: through a
// link, setup would write into the link's target and Clear would delete
// there (a planted staging/ link once did both).
func OpenStaging(dir string) (*Staging, error) {
	s := &Staging{dir: dir}
	if err := s.refuseLinks(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	return s, nil
}

// refuseLinks checks that the staging directory and its work/ are not links
// or special files (a missing one is fine: OpenStaging creates it).
func (s *Staging) refuseLinks() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, "work")} {
		fi, err := os.Lstat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue // created by OpenStaging, as a real directory
		}
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("staging: %w", &durable.UnsafeError{Path: d, What: describeMode(fi.Mode()) + ", not a directory"})
		}
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	if m&fs.ModeSymlink != 0 {
		return "a symbolic link"
	}
	if m.IsRegular() {
		return "a regular file"
	}
	return "a " + m.Type().String() + " entry"
}

// Dir is the staging directory.
func (s *Staging) Dir() string { return s.dir }

// Clear removes all staged work, after the install it served committed.
// Nothing is removed through a link: os.RemoveAll never follows one below
// work/, and refuseLinks makes sure work/ and the staging directory are not.
func (s *Staging) Clear() error {
	if err := s.refuseLinks(); err != nil {
		return fmt.Errorf("%w; staged work was not cleared", err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, "work")); err != nil {
		return fmt.Errorf("staging: clear: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "work"), 0o755); err != nil {
		return fmt.Errorf("staging: clear: %w", err)
	}
	return durable.SyncDir(s.dir)
}

// work is the staged state of one manifest.
type work struct {
	dir string
	mu  sync.Mutex // serializes journal appends
}

// workFor names the work directory of m by the digest of its content, so that
// another manifest never mistakes it for its own. It creates nothing: the plan
// is checked against the free space first, and prepare creates the files.
func (s *Staging) workFor(m *verify.Manifest) (*work, error) {
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &work{dir: filepath.Join(s.dir, "work", hex.EncodeToString(sum[:8]))}, nil
}

// file is where f is assembled.
func (w *work) file(f verify.File) string {
	return filepath.Join(w.dir, "files", filepath.FromSlash(f.Path))
}

// prepare makes f's staged file exist with f's size (sparse where nothing was
// written yet), keeping what an earlier attempt wrote.
func (w *work) prepare(f verify.File) error {
	name := w.file(f)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer out.Close()
	if fi, err := out.Stat(); err == nil && fi.Size() == f.Size {
		return nil
	}
	if err := out.Truncate(f.Size); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return nil
}

// journaled lists the chunks an earlier attempt recorded as written.
func (w *work) journaled() (map[string]bool, error) {
	f, err := os.Open(filepath.Join(w.dir, "journal"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	defer f.Close()
	done := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); verify.CheckDigest(line) == nil {
			done[line] = true // a torn last line fails CheckDigest and is ignored
		}
	}
	return done, nil
}

// record appends sum to the journal after its bytes were written.
func (w *work) record(sum string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(w.dir, "journal"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	_, err = f.WriteString(sum + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("staging: journal: %w", err)
	}
	return nil
}
