package fetch

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
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
	dir  string
	root *durable.Root // the staging directory: every work file is opened beneath it
}

// OpenStaging opens (creating it if needed) the staging store at dir, for a
// caller without a slot store (tests, tools): dir is made and opened beneath
// its parent without following a link. The caller closes it.
func OpenStaging(dir string) (*Staging, error) {
	parent, err := durable.OpenRoot(filepath.Dir(dir))
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	defer parent.Close()
	base := filepath.Base(dir)
	if err := parent.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	root, err := parent.OpenDir(base)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	return NewStaging(root)
}

// NewStaging is the staging store in the opened directory root (a slot
// store's OpenStaging), which it then owns and Close closes. Every file,
// directory, rename and removal of staged work is resolved beneath root
// without following a link (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or an
// O_NOFOLLOW walk), at the moment of use: a work directory, its files/ or a
// staged file swapped for a link between two attempts cannot redirect a
// write, and a FIFO or device there is refused instead of blocking an open.
func NewStaging(root *durable.Root) (*Staging, error) {
	s := &Staging{dir: root.Name(), root: root}
	if err := root.MkdirAll("work", 0o755); err != nil {
		root.Close()
		return nil, fmt.Errorf("staging: %w", err)
	}
	return s, nil
}

// Close releases the staging directory.
func (s *Staging) Close() error { return s.root.Close() }

// Dir is the staging directory, for messages and space checks.
func (s *Staging) Dir() string { return s.dir }

// Clear removes all staged work, after the install it served committed.
// Nothing is removed through a link: work/ is resolved beneath the staging
// directory without following one, and a link inside it is removed as a
// link.
func (s *Staging) Clear() error {
	if err := s.root.RemoveAll("work"); err != nil {
		return fmt.Errorf("staging: clear: %w; staged work was not cleared", err)
	}
	if err := s.root.MkdirAll("work", 0o755); err != nil {
		return fmt.Errorf("staging: clear: %w", err)
	}
	return s.root.SyncDir(".")
}

// work is the staged state of one manifest: work/<hash>/ of the staging
// directory, every file of it opened beneath the staging directory's root.
type work struct {
	root *durable.Root // the staging directory's
	rel  string        // work/<hash>, beneath root
	dir  string        // its path, for messages and space checks
	mu   sync.Mutex    // serializes journal appends
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
	rel := path.Join("work", hex.EncodeToString(sum[:8]))
	return &work{root: s.root, rel: rel, dir: filepath.Join(s.dir, filepath.FromSlash(rel))}, nil
}

// mkdir makes the work directory (and rel below it), beneath the staging
// directory.
func (w *work) mkdir(rel string) error {
	if err := w.root.MkdirAll(path.Join(w.rel, rel), 0o755); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return nil
}

// open opens the regular file rel of the work directory with flags (creating
// it 0o644 with os.O_CREATE), beneath the staging directory: a link on the
// way, a FIFO or a device is an *durable.UnsafeError naming it.
func (w *work) open(rel string, flags int) (*os.File, error) {
	return w.root.OpenFile(path.Join(w.rel, rel), flags, 0o644)
}

// fileRel is where f is assembled, relative to the work directory.
func fileRel(f verify.File) string { return path.Join("files", f.Path) }

// file is where f is assembled, as a path for messages.
func (w *work) file(f verify.File) string {
	return filepath.Join(w.dir, "files", filepath.FromSlash(f.Path))
}

// prepare makes f's staged file exist with f's size (sparse where nothing was
// written yet), keeping what an earlier attempt wrote.
func (w *work) prepare(f verify.File) error {
	rel := fileRel(f)
	if err := w.mkdir(path.Dir(rel)); err != nil {
		return err
	}
	out, err := w.open(rel, os.O_WRONLY|os.O_CREATE)
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
	f, err := w.open("journal", os.O_RDONLY)
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
	f, err := w.open("journal", os.O_WRONLY|os.O_CREATE|os.O_APPEND)
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
