package slots

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Config locates one model's files.
type Config struct {
	Dir   string // the model's state directory, e.g. /var/lib/modelslot/demo
	Model string
	Link  string // the link the inference server reads; default Dir/current
}

// Store is one model's slot store, opened under its lock. It is not safe for
// concurrent use by several goroutines; the lock makes it safe across processes.
type Store struct {
	cfg  Config
	root *durable.Root // the state directory, opened once; nil for a view of one that does not exist
	lock *lock         // nil for a read-only view
	st   *State
}

// ErrUnsafe means an entry of the state directory is a link, a FIFO or a
// device where modelslot keeps its own file or directory (a
// *durable.UnsafeError names it). It is refused, never followed or removed.
var ErrUnsafe = durable.ErrUnsafe

// maxStateSize bounds state.json: it holds two slots and a few records, a few
// KiB; anything larger is not ours.
const maxStateSize = 1 << 20

// Names of the entries in a model's state directory (DESIGN.md § On-disk layout).
const (
	stateFile = "state.json"
	lockFile  = "lock"
	slotsDir  = "slots"
	// StagingDir holds partial downloads; never read by the server.
	StagingDir = "staging"
)

// Open creates the layout if needed, takes the lock (a *BusyError if another
// process holds it) and recovers any step that a crash interrupted. op names the
// operation in the lock file, for the message a second process prints.
func Open(ctx context.Context, cfg Config, op string) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := makeLayout(cfg.Dir); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	if s.root, err = durable.OpenRoot(cfg.Dir); err != nil {
		return nil, err
	}
	if err := s.checkLayout(); err != nil {
		s.root.Close()
		return nil, err
	}
	if s.lock, err = acquireLock(filepath.Join(cfg.Dir, lockFile), op); err != nil {
		s.root.Close()
		return nil, err
	}
	if s.st, err = s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.recover(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("recover %s: %w", cfg.Model, err)
	}
	return s, nil
}

// OpenView reads the store without the lock and without recovery, for status
// while another process is busy with it. The view must not be changed.
func OpenView(cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	err = s.withRoot(func(*durable.Root) error {
		if err := s.checkLayout(); err != nil {
			return err
		}
		s.st, err = s.load()
		return err
	})
	if errors.Is(err, fs.ErrNotExist) { // no state directory: never installed, unless the link says otherwise
		s.st, err = s.load()
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the lock and the state directory.
func (s *Store) Close() error {
	err := s.lock.release()
	s.root.Close()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if err := verify.CheckModelName(c.Model); err != nil {
		return c, err
	}
	if !filepath.IsAbs(c.Dir) {
		return c, fmt.Errorf("state directory %q must be an absolute path", c.Dir)
	}
	if c.Link == "" {
		c.Link = filepath.Join(c.Dir, "current")
	}
	if !filepath.IsAbs(c.Link) {
		return c, fmt.Errorf("link %q must be an absolute path", c.Link)
	}
	c.Dir, c.Link = filepath.Clean(c.Dir), filepath.Clean(c.Link)
	return c, nil
}

// makeLayout creates the state directory and its subdirectories when they are
// missing, syncing the parent of each one it creates: on a device's first
// install a new directory entry must not vanish in a power cut.
func makeLayout(dir string) error {
	dirs := []string{filepath.Dir(dir), dir, filepath.Join(dir, slotsDir), filepath.Join(dir, StagingDir)}
	for _, d := range dirs { // the state root first: a new one is synced into its parent too
		if _, err := os.Lstat(d); err == nil {
			continue // whatever it is, checkLayout judges it; never create through a link
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
		if err := durable.SyncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
	}
	return nil
}

// load reads state.json. A missing file is a new store, unless slots or the link
// already hold data: then the file was lost, and guessing could serve the wrong
// version, so the operator is asked instead.
func (s *Store) load() (*State, error) {
	name := filepath.Join(s.cfg.Dir, stateFile)
	data, err := s.readFile(stateFile, maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		if what := s.existingData(); what != "" {
			return nil, fmt.Errorf("%w: %s is missing but %s exists; modelslot will not guess which version is good — see docs/recovery.md", ErrCorruptState, name, what)
		}
		return newState(s.cfg.Model), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	st, err := parseState(data, s.cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; it was left as it is — see docs/recovery.md", name, err)
	}
	return st, nil
}

func (s *Store) existingData() string {
	if _, err := os.Lstat(s.cfg.Link); err == nil {
		return "the link " + s.cfg.Link
	}
	for _, n := range []string{A, B} {
		if _, err := os.Lstat(s.SlotDir(n)); err == nil {
			return "slot directory " + s.SlotDir(n)
		}
	}
	return ""
}

// save writes st as the new state.json, durably, and makes it current.
func (s *Store) save(st *State) error {
	if s.lock == nil {
		return errors.New("internal error: save on a read-only view")
	}
	st.Updated = time.Now().UTC()
	data, err := st.marshal()
	if err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(s.cfg.Dir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	s.st = st
	return nil
}

// update applies change to a copy of the state and saves it.
func (s *Store) update(change func(*State)) error {
	st := s.st.clone()
	change(st)
	return s.save(st)
}

// State returns a copy of the current state.
func (s *Store) State() *State { return s.st.clone() }

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

// SlotDir is the directory of slot name.
func (s *Store) SlotDir(name string) string { return filepath.Join(s.cfg.Dir, slotsDir, name) }

// StagingPath is the directory for partial downloads.
func (s *Store) StagingPath() string { return filepath.Join(s.cfg.Dir, StagingDir) }

// OpenStaging makes the staging directory if needed and opens it beneath the
// state directory without following a link (a link or special file there is
// an *durable.UnsafeError). The caller closes it.
func (s *Store) OpenStaging() (st *durable.Root, err error) {
	err = s.withRoot(func(r *durable.Root) error {
		if err := r.MkdirAll(StagingDir, 0o755); err != nil {
			return err
		}
		st, err = r.OpenDir(StagingDir)
		return err
	})
	return st, err
}

// OpenDir opens dir, a directory of the state directory (a slot's, or the
// previous version a Fill keeps aside), beneath the state directory without
// following a link, for reading its files beneath it. The caller closes it.
func (s *Store) OpenDir(dir string) (d *durable.Root, err error) {
	rel, err := filepath.Rel(s.cfg.Dir, dir)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("internal error: %s is not in the state directory %s", dir, s.cfg.Dir)
	}
	err = s.withRoot(func(r *durable.Root) error {
		d, err = r.OpenDir(filepath.ToSlash(rel))
		return err
	})
	return d, err
}

// Inactive is the slot an install writes to: never the one the link points at.
func (s *Store) Inactive() string {
	if s.st.Active == "" {
		return A
	}
	return Other(s.st.Active)
}
