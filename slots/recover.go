package slots

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/durable"
)

// recover finishes or undoes whatever a crash interrupted, in an order where each
// step leaves a state the next can rely on:
//  1. a pending link switch is finished (its intent was saved before the link moved);
//  2. an interrupted install is undone (the slot was never served);
//  3. leftover temp directories of modelslot's own naming are removed;
//  4. the link is checked against the state.
//
// A trial that was running is left as it is: whether to resume or revert it is
// the caller's decision (it depends on the health configuration).
func (s *Store) recover(ctx context.Context) error {
	if s.st.Switch != nil {
		slog.Info("recovery: finishing an interrupted link switch", "model", s.cfg.Model, "op", s.st.Switch.Op, "to", s.st.Switch.To)
		if err := s.finishSwitch(); err != nil {
			return err
		}
	}
	for _, n := range []string{A, B} {
		if s.st.Slots[n].Status == Installing {
			slog.Info("recovery: undoing an interrupted install", "model", s.cfg.Model, "slot", n, "version", s.st.Slots[n].Version)
			if err := s.clearSlot(n); err != nil {
				return err
			}
			if err := s.update(func(st *State) { st.Slots[n] = &SlotState{Status: Empty} }); err != nil {
				return err
			}
		}
		if err := s.removeTemps(n); err != nil {
			return err
		}
	}
	return s.checkLink()
}

// Temp names inside slots/: a slot being filled, and a slot being thrown away.
func (s *Store) fillDir(name string) string {
	return filepath.Join(s.cfg.Dir, slotsDir, "."+name+".tmp")
}
func (s *Store) trashDir(name string) string {
	return filepath.Join(s.cfg.Dir, slotsDir, "."+name+".trash")
}

// keptDir holds a slot's previous version while it is being refilled, so the
// install can reuse its chunks (Fill.Previous); it is never served.
func (s *Store) keptDir(name string) string {
	return filepath.Join(s.cfg.Dir, slotsDir, "."+name+".previous")
}

// clearSlot removes the content of a slot that is not served. It is renamed aside
// first, so a crash halfway through a large removal leaves the slot name free
// rather than a half-deleted tree under it.
func (s *Store) clearSlot(name string) error {
	if name == s.st.Active {
		return fmt.Errorf("internal error: refusing to clear the active slot %s", name)
	}
	if err := os.Rename(s.SlotDir(name), s.trashDir(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear slot %s: %w", name, err)
	}
	if err := durable.SyncDir(filepath.Join(s.cfg.Dir, slotsDir)); err != nil {
		return err
	}
	return s.removeTemps(name)
}

// removeTemps removes slot name's temp, trash and kept directories. They are
// modelslot's own, named by it, and never served, so removing them is safe.
func (s *Store) removeTemps(name string) error {
	for _, d := range []string{s.fillDir(name), s.trashDir(name), s.keptDir(name)} {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			continue // nothing to do; RemoveAll would still fail on a read-only filesystem
		}
		if err := s.removeAll(d); err != nil {
			return fmt.Errorf("remove %s: %w", d, err)
		}
	}
	return nil
}

// removeAll removes dir, a directory of the state directory, and everything
// in it, resolved beneath the state directory: a link on the way is refused
// and a link inside is removed as a link, never followed.
func (s *Store) removeAll(dir string) error {
	rel, err := filepath.Rel(s.cfg.Dir, dir)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("internal error: %s is not in the state directory %s", dir, s.cfg.Dir)
	}
	return s.withRoot(func(r *durable.Root) error { return r.RemoveAll(filepath.ToSlash(rel)) })
}

// checkLink makes sure the link agrees with the state. A link that was deleted
// by hand is put back (the state says which slot is verified and active); a link
// that points somewhere else is reported, not overwritten.
func (s *Store) checkLink() error {
	linked, err := s.LinkedSlot()
	if err != nil {
		return err
	}
	switch {
	case linked == s.st.Active:
		return nil
	case linked == "":
		if err := s.CheckLinkDir(); err != nil {
			return err
		}
		slog.Warn("recovery: the link was missing; pointing it at the active slot again", "link", s.cfg.Link, "slot", s.st.Active)
		return s.pointLink(s.st.Active)
	default:
		return fmt.Errorf("%w: %s points at slot %s but state.json says the active slot is %q; see docs/recovery.md",
			ErrCorruptState, s.cfg.Link, linked, s.st.Active)
	}
}
