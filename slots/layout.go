package slots

import (
	"errors"
	"io/fs"
	"path"

	"github.com/modelslot/modelslot/internal/durable"
)

// outboxDir is the agent's event queue; the store only makes sure it is not
// a link or a special file, its content is the agent's.
const outboxDir = "outbox"

// checkLayout refuses a state directory whose own entries are not what
// modelslot made: a subdirectory, slot or temp slot that is a link, a file or
// a special file, a state.json or lock that is a link, FIFO or device. Every
// one is resolved beneath the opened state directory without following a
// link, so nothing is read, written or removed through one (a planted
// staging/ link once made an install write, then delete, outside). A missing
// entry is fine: makeLayout or an install creates it.
func (s *Store) checkLayout() error {
	dirs := []string{slotsDir, StagingDir, outboxDir}
	for _, n := range []string{A, B} {
		dirs = append(dirs, path.Join(slotsDir, n), path.Join(slotsDir, "."+n+".tmp"), path.Join(slotsDir, "."+n+".trash"))
	}
	for _, d := range dirs {
		if err := s.root.Check(d, true); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, f := range []string{stateFile, lockFile} {
		if err := s.root.Check(f, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// withRoot runs fn with the state directory opened: the store's own, or, for
// a view (which holds no descriptor between calls), one opened for the call.
func (s *Store) withRoot(fn func(*durable.Root) error) error {
	if s.root != nil {
		return fn(s.root)
	}
	r, err := durable.OpenRoot(s.cfg.Dir)
	if err != nil {
		return err
	}
	defer r.Close()
	s.root = r
	defer func() { s.root = nil }()
	return fn(r)
}

// readFile reads the regular file rel (slash-separated) of the state
// directory, resolved beneath it without following a link, at most max bytes.
func (s *Store) readFile(rel string, max int64) (data []byte, err error) {
	err = s.withRoot(func(r *durable.Root) error {
		data, err = r.ReadFile(rel, max)
		return err
	})
	return data, err
}

// checkEntry reports whether rel of the state directory is a real directory
// (dir) or regular file, reached without following a link.
func (s *Store) checkEntry(rel string, dir bool) error {
	return s.withRoot(func(r *durable.Root) error { return r.Check(rel, dir) })
}
