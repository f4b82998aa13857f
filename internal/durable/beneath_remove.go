package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// The rest of Root's write side: files opened for writing without O_EXCL,
// renames with both names beneath roots, and removal. Each resolves every
// component without following a link at the moment of use.

// OpenFile opens the regular file rel under r with flags (os.O_RDONLY,
// O_WRONLY or O_RDWR, with O_CREATE, O_APPEND or O_TRUNC as wanted), creating
// it with perm. Unlike Create an existing file is opened; like OpenRegular the
// open is O_NONBLOCK, so a FIFO in its place cannot block, and anything but a
// regular file — a link, a FIFO, a device — is an *UnsafeError naming it.
func (r *Root) OpenFile(rel string, flags int, perm fs.FileMode) (*os.File, error) {
	fd, err := r.openBeneathMode(rel, flags|unix.O_NONBLOCK, uint32(perm.Perm()))
	if errors.Is(err, unix.ENXIO) {
		// O_WRONLY|O_NONBLOCK on a FIFO with no reader: say what it is.
		if cerr := r.Check(rel, false); cerr != nil {
			return nil, cerr
		}
	}
	if err != nil {
		return nil, err
	}
	return r.regular(fd, rel)
}

// regular checks that fd (rel under r) is a regular file and makes it an
// *os.File doing blocking I/O; it closes fd on error.
func (r *Root) regular(fd int, rel string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat %s/%s: %w", r.name, rel, err)
	}
	if err := r.wantKind(rel, st.Mode, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Back to blocking I/O: a regular file never blocks, and Go's poller
	// must not treat the descriptor as a pollable one.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open %s/%s: %w", r.name, rel, err)
	}
	return os.NewFile(uintptr(fd), r.name+"/"+rel), nil
}

// Rename renames from to to, both under r (see RenameTo).
func (r *Root) Rename(from, to string) error { return r.RenameTo(from, r, to) }

// RenameTo renames from under r to to under dst. The directories of both
// names are opened beneath their roots without following a link; the last
// components are renamed as entries, never followed (a link there is moved
// as a link, which cannot change anything outside).
func (r *Root) RenameTo(from string, dst *Root, to string) error {
	fp, err := r.dirFD(path.Dir(from))
	if err != nil {
		return err
	}
	defer r.closeDirFD(fp)
	tp, err := dst.dirFD(path.Dir(to))
	if err != nil {
		return err
	}
	defer dst.closeDirFD(tp)
	if err := unix.Renameat(fp, path.Base(from), tp, path.Base(to)); err != nil {
		return &os.LinkError{Op: "rename", Old: r.name + "/" + from, New: dst.name + "/" + to, Err: err}
	}
	return nil
}

// RemoveAll removes rel under r and everything below it; a missing rel is no
// error. It never follows a link: each directory is opened O_NOFOLLOW
// relative to its parent's descriptor, and a link (or FIFO, device, socket)
// is unlinked as an entry, so what it points to is never touched. A link on
// the way to rel is an *UnsafeError and nothing is removed.
func (r *Root) RemoveAll(rel string) error {
	parent, err := r.dirFD(path.Dir(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer r.closeDirFD(parent)
	return removeAt(parent, path.Base(rel), r.name+"/"+rel)
}

// removeAt removes the entry name of the directory dir (shown as display).
func removeAt(dir int, name, display string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return &fs.PathError{Op: "remove", Path: display, Err: err}
	}
	// A directory: empty it through a descriptor of its own. Entries that
	// appear while it is emptied are removed on the next pass.
	for pass := 0; ; pass++ {
		fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return removeAt(dir, name, display) // swapped for a link or file meanwhile: an entry
		}
		if err != nil {
			return &fs.PathError{Op: "remove", Path: display, Err: err}
		}
		d := os.NewFile(uintptr(fd), display)
		names, err := d.Readdirnames(-1)
		if err == nil {
			for _, n := range names {
				if err = removeAt(fd, n, display+"/"+n); err != nil {
					break
				}
			}
		}
		d.Close()
		if err != nil {
			return err
		}
		err = unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.ENOTEMPTY) || pass == 10 {
			return &fs.PathError{Op: "remove", Path: display, Err: err}
		}
	}
}

// SyncDir makes the entries of the real directory rel under r ("." for r)
// durable, like the package's SyncDir, without following a link to it.
func (r *Root) SyncDir(rel string) error {
	if !enabled {
		return nil
	}
	var fd int
	var err error
	if rel == "." {
		fd, err = unix.Openat(int(r.f.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = r.openBeneath(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	}
	if err != nil {
		return fmt.Errorf("open directory %s/%s to fsync it: %w", r.name, rel, err)
	}
	d := os.NewFile(uintptr(fd), r.name+"/"+rel)
	defer d.Close()
	return Sync(d)
}
