package durable

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The write side of Root: every directory made, file created, opened or
// renamed into is resolved beneath the root without following a link in any
// component, at the moment of use, so a directory swapped for a link after a
// check cannot redirect a write.

// OpenDir opens the real directory rel under r as a Root of its own.
func (r *Root) OpenDir(rel string) (*Root, error) {
	fd, err := r.openBeneath(rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	return &Root{f: os.NewFile(uintptr(fd), r.name+"/"+rel), name: r.name + "/" + rel}, nil
}

// MkdirAll makes rel and its missing parents under r with perm, each one a
// real directory: an existing component that is a link or not a directory is
// an *UnsafeError, and nothing is made beyond it.
func (r *Root) MkdirAll(rel string, perm fs.FileMode) error {
	if rel == "." || rel == "" {
		return nil
	}
	elems := strings.Split(rel, "/")
	for i := range elems {
		sub := strings.Join(elems[:i+1], "/")
		parent, err := r.dirFD(path.Dir(sub))
		if err != nil {
			return err
		}
		err = unix.Mkdirat(parent, elems[i], uint32(perm.Perm()))
		r.closeDirFD(parent)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return &fs.PathError{Op: "mkdir", Path: r.name + "/" + sub, Err: err}
		}
		if err := r.Check(sub, true); err != nil {
			return err
		}
	}
	return nil
}

// Create creates the new regular file rel under r (O_EXCL: an entry of that
// name, a link included, is an error) for writing.
func (r *Root) Create(rel string, perm fs.FileMode) (*os.File, error) {
	fd, err := r.openBeneathMode(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), r.name+"/"+rel), nil
}

// OpenRegular opens rel under r with flags (O_RDONLY or O_WRONLY, no
// O_CREAT), O_NONBLOCK so a FIFO in its place cannot block, and refuses
// anything but a regular file.
func (r *Root) OpenRegular(rel string, flags int) (*os.File, error) {
	fd, err := r.openBeneath(rel, flags|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return r.regular(fd, rel)
}

// RenameInto renames the file from (a path the caller owns, outside or
// inside r) to rel under r. The directory of rel is opened beneath r without
// following a link; the last component is replaced, never followed.
func (r *Root) RenameInto(from, rel string) error {
	parent, err := r.dirFD(path.Dir(rel))
	if err != nil {
		return err
	}
	defer r.closeDirFD(parent)
	if err := unix.Renameat(unix.AT_FDCWD, from, parent, path.Base(rel)); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: r.name + "/" + rel, Err: err}
	}
	return nil
}

// dirFD is a descriptor of the real directory rel under r ("." is r itself).
func (r *Root) dirFD(rel string) (int, error) {
	if rel == "." {
		return int(r.f.Fd()), nil
	}
	return r.openBeneath(rel, unix.O_PATH|unix.O_DIRECTORY)
}

func (r *Root) closeDirFD(fd int) {
	if fd != int(r.f.Fd()) {
		unix.Close(fd)
	}
}
