package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ManifestPath is where modelslot stores, inside a slot, the manifest the slot
// was verified against.
const ManifestPath = ".modelslot/manifest.json"

// Default probe files of a model directory without a manifest naming them.
const (
	DefaultProbeInput    = "probe/input.json"
	DefaultProbeExpected = "probe/expected.json"
	// DefaultProbeTolerances: optional per-field tolerances (JSON pointer →
	// absolute tolerance), as modelslot's probe applies them.
	DefaultProbeTolerances = "probe/tolerances.json"
)

// Slot is one model directory, opened through the link exactly once. Every
// file of the model must be read through it (Open, ReadFile, FS), never through
// the link path, so a swap of the link during a load cannot mix two versions.
type Slot struct {
	Link     string // the link as given to the loader
	Dir      string // the directory the link pointed at when it was opened
	Model    string // model name, when the manifest or config names one
	Version  string
	Sequence uint64    // from the manifest; 0 in a bare directory
	Probe    ProbeSpec // zero Input when the model ships no probe
	Bare     bool      // no .modelslot/manifest.json: version from the model's own metadata

	id   string // Dir plus the manifest digest: tells a refilled slot from the old one
	root *os.Root
}

// ProbeSpec names a model's probe files, relative to the slot.
type ProbeSpec struct {
	Input      string
	Expected   string
	Tolerance  float64
	Tolerances string // optional file of per-field tolerances; "" = none
}

// Open opens a file of the slot by its slash-separated name. Names that
// would leave the slot (.., absolute, symlinks pointing out) are refused.
func (s *Slot) Open(name string) (*os.File, error) { return s.root.Open(name) }

// ReadFile reads a whole file of the slot.
func (s *Slot) ReadFile(name string) ([]byte, error) { return s.root.ReadFile(name) }

// FS is the slot as a file system.
func (s *Slot) FS() fs.FS { return s.root.FS() }

// String names the slot for logs.
func (s *Slot) String() string { return fmt.Sprintf("%s %s (%s)", s.Model, s.Version, s.Dir) }

func (s *Slot) close() error { return s.root.Close() }

// OpenSlot follows link once and reads what the model in that directory is:
// its version from the manifest, or, in a bare model directory, from the
// model's own metadata. The caller must Close the slot through the loader (a
// Slot that is not handed to a loader is closed with CloseSlot).
func OpenSlot(link string, tolerance float64) (*Slot, error) {
	abs, err := filepath.Abs(link)
	if err != nil {
		return nil, fmt.Errorf("open model link %s: %w", link, err)
	}
	root, dir, err := openThrough(abs)
	if err != nil {
		return nil, fmt.Errorf("open model link %s: %w; check that it points at a model directory", link, err)
	}
	s := &Slot{Link: link, Dir: dir, root: root}
	if err := s.describe(tolerance); err != nil {
		root.Close()
		return nil, fmt.Errorf("model at %s (through %s): %w", dir, link, err)
	}
	return s, nil
}

// CloseSlot releases a slot that was opened with OpenSlot and not given to a
// loader.
func CloseSlot(s *Slot) error { return s.close() }

// openThrough opens the directory the link points at with one open(2), so the
// directory handle and its reported path belong to the same instant, then
// reads the path back from /proc.
func openThrough(link string) (*os.Root, string, error) {
	d, err := os.Open(link)
	if err != nil {
		return nil, "", err
	}
	defer d.Close()
	fdPath := fmt.Sprintf("/proc/self/fd/%d", d.Fd())
	dir, err := os.Readlink(fdPath)
	if err != nil { // no /proc: the readlink below can race a swap, the handle cannot
		if dir, err = filepath.EvalSymlinks(link); err != nil {
			return nil, "", err
		}
		fdPath = dir
	}
	root, err := os.OpenRoot(fdPath)
	if err != nil {
		return nil, "", err
	}
	return root, dir, nil
}

func (s *Slot) describe(tolerance float64) error {
	raw, err := s.root.ReadFile(ManifestPath)
	switch {
	case err == nil:
		m, err := parseManifest(raw)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		s.id = s.Dir + "@" + hex.EncodeToString(sum[:])
		s.Model, s.Version, s.Sequence = m.Model, m.Version, m.Sequence
		if m.Probe != nil {
			s.Probe = ProbeSpec{Input: m.Probe.Input, Expected: m.Probe.Expected, Tolerance: m.Probe.Tolerance, Tolerances: m.Probe.Tolerances}
		}
	case errors.Is(err, fs.ErrNotExist):
		s.Bare = true
		if s.Model, s.Version, err = bareVersion(s.root); err != nil {
			return err
		}
		s.id = s.Dir + "@" + s.Version
	default:
		return fmt.Errorf("read %s: %w", ManifestPath, err)
	}
	if s.Probe.Input == "" {
		if _, err := s.root.Stat(DefaultProbeInput); err == nil {
			s.Probe = ProbeSpec{Input: DefaultProbeInput, Expected: DefaultProbeExpected}
			if _, err := s.root.Stat(DefaultProbeTolerances); err == nil {
				s.Probe.Tolerances = DefaultProbeTolerances
			}
		}
	}
	if s.Probe.Tolerance == 0 {
		s.Probe.Tolerance = tolerance
	}
	return nil
}
