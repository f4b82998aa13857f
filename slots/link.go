package slots

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/durable"
)

// ErrForeignLink means the link exists but points somewhere modelslot did not
// put it. modelslot does not overwrite it: someone else may rely on it.
var ErrForeignLink = errors.New("link points outside the slots")

// LinkPath is the configured link.
func (s *Store) LinkPath() string { return s.cfg.Link }

// linkTarget is what the link holds for slot name: a relative path when the link
// lives in the state directory (so the tree can be moved or mounted elsewhere and
// still resolve), an absolute one otherwise.
func (s *Store) linkTarget(name string) string {
	if filepath.Dir(s.cfg.Link) == s.cfg.Dir {
		return filepath.Join(slotsDir, name)
	}
	return s.SlotDir(name)
}

// LinkedSlot returns the slot the link points at, or "" when there is no link.
func (s *Store) LinkedSlot() (string, error) {
	target, err := os.Readlink(s.cfg.Link)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read link %s: %w", s.cfg.Link, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(s.cfg.Link), target)
	}
	for _, n := range []string{A, B} {
		if filepath.Clean(target) == s.SlotDir(n) {
			return n, nil
		}
	}
	return "", fmt.Errorf("%w: %s -> %s; move it away or fix `link` in the config", ErrForeignLink, s.cfg.Link, target)
}

// CheckLinkDir reports, before any work starts, whether the link can be made:
// its directory must exist (modelslot does not create directories outside its
// state directory, since their owner and mode are the operator's choice).
func (s *Store) CheckLinkDir() error {
	dir := filepath.Dir(s.cfg.Link)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the link's directory %s: %w; create it or change `link` in the config", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the link's directory %s is not a directory; change `link` in the config", dir)
	}
	return nil
}

// pointLink makes the link point at slot name, or removes it when name is "".
func (s *Store) pointLink(name string) error {
	if name == "" {
		return durable.RemoveLink(s.cfg.Link)
	}
	return durable.Symlink(s.linkTarget(name), s.cfg.Link)
}
