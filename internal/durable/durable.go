// Package durable owns every call that makes a change survive a power cut: write
// to a temp name, fsync the file, rename it over the target, fsync the directory.
// Keeping them in one place lets a reviewer audit the whole project's durability
// at once, and lets the power-cut canary build switch them off (build tag
// modelslot_nofsync) to prove its harness catches the difference.
package durable

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// slowSync is the fsync duration past which a warning is logged: a disk that
// takes this long will make updates slow, and an operator should know why.
const slowSync = time.Second

// Sync flushes f's data and metadata to stable storage.
func Sync(f *os.File) error {
	if !enabled {
		return nil
	}
	start := time.Now()
	err := f.Sync()
	if d := time.Since(start); d > slowSync {
		slog.Warn("slow fsync", "file", f.Name(), "took", d.Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}

// SyncDir makes the entries of dir durable: without it a rename or a new file
// can vanish in a power cut even though the file's own data was synced.
func SyncDir(dir string) error {
	if !enabled {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to fsync it: %w", dir, err)
	}
	defer d.Close()
	return Sync(d)
}

// WriteFile replaces name with data atomically and durably: a reader sees the
// old content or the new, never a mix, and after a power cut the file holds one
// of them. The fsync before the rename matters: ext4 may otherwise commit the
// rename before the data, leaving an empty file under the new name.
func WriteFile(name string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename succeeded
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := Sync(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return Rename(tmp, name)
}

// Rename renames oldpath to newpath and syncs the directories involved.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if err := SyncDir(filepath.Dir(newpath)); err != nil {
		return err
	}
	if od := filepath.Dir(oldpath); od != filepath.Dir(newpath) {
		return SyncDir(od)
	}
	return nil
}

// Symlink points link at target atomically: a new link is made under a temp name
// and renamed over the old one, so a reader resolving link at any moment finds
// the old target or the new, never nothing. The directory is synced so the swap
// survives a power cut.
func Symlink(target, link string) error {
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".new")
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("swap link %s: remove stale %s: %w", link, tmp, err)
	}
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("swap link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("swap link %s: %w", link, err)
	}
	return SyncDir(filepath.Dir(link))
}

// RemoveLink removes link (if present) and syncs its directory.
func RemoveLink(link string) error {
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove link %s: %w", link, err)
	}
	return SyncDir(filepath.Dir(link))
}
