package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrUnsafe means an entry of a state directory is a symbolic link, a FIFO, a
// device or a socket where modelslot keeps a file or directory of its own.
// Following it could read, write or delete outside the state directory, or
// block forever, so it is refused, never followed and never removed.
var ErrUnsafe = errors.New("unsafe entry in the state directory")

// UnsafeError names the entry and what it is.
type UnsafeError struct {
	Path string // the entry, as root/rel
	What string // "a symbolic link", "a FIFO", …
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s is %s, not modelslot's own; it was not followed or changed: move it aside and run the command again (docs/recovery.md)", e.Path, e.What)
}

func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// Root is a directory opened once: every name under it is resolved beneath it
// without following a symbolic link in any component, so a link planted inside
// it can never lead a read, write or delete outside. The directory itself is
// opened by its path as configured (a link above it is the administrator's).
type Root struct {
	f    *os.File
	name string
}

// OpenRoot opens the directory name (O_PATH: nothing is read through it).
func OpenRoot(name string) (*Root, error) {
	fd, err := unix.Open(name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", name, &fs.PathError{Op: "open", Path: name, Err: err})
	}
	return &Root{f: os.NewFile(uintptr(fd), name), name: name}, nil
}

// Name is the root's path.
func (r *Root) Name() string { return r.name }

// Close releases the root's descriptor.
func (r *Root) Close() error {
	if r == nil || r.f == nil {
		return nil
	}
	return r.f.Close()
}

// forceWalk makes openBeneath use the component walk even where openat2
// exists; tests set it to prove the fallback refuses what openat2 refuses.
var forceWalk bool

var openat2Missing = sync.OnceValue(func() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if err == nil {
		unix.Close(fd)
	}
	return errors.Is(err, unix.ENOSYS) // Linux < 5.6 (or a seccomp filter that hides it)
})

// openBeneath opens rel (slash-separated, relative) under r with flags, never
// following a link: openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where the
// kernel has it (Linux ≥ 5.6), else a walk opening each component with
// O_NOFOLLOW. A link anywhere on the way is an *UnsafeError.
func (r *Root) openBeneath(rel string, flags int) (int, error) {
	return r.openBeneathMode(rel, flags, 0)
}

// openBeneathMode is openBeneath with the mode of a file O_CREAT makes.
func (r *Root) openBeneathMode(rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if flags&unix.O_CREAT == 0 {
		mode = 0 // openat2 refuses a mode without O_CREAT
	}
	if !forceWalk && !openat2Missing() {
		fd, err := unix.Openat2(int(r.f.Fd()), rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		return fd, r.openError(rel, err)
	}
	return r.walk(rel, flags, mode)
}

func (r *Root) walk(rel string, flags int, mode uint32) (int, error) {
	elems := strings.Split(rel, "/")
	dir := int(r.f.Fd())
	for i, e := range elems {
		if e == "" || e == "." || e == ".." {
			return -1, fmt.Errorf("internal error: %q is not a clean relative path", rel)
		}
		fl := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(elems)-1 {
			fl = flags
		}
		fd, err := unix.Openat(dir, e, fl, mode)
		if dir != int(r.f.Fd()) {
			unix.Close(dir)
		}
		if err != nil {
			return -1, r.openError(strings.Join(elems[:i+1], "/"), err)
		}
		dir = fd
	}
	return dir, nil
}

// openError turns the errors a link causes into an *UnsafeError naming the
// first link on the way: ELOOP from O_NOFOLLOW or RESOLVE_NO_SYMLINKS, ENOTDIR
// from O_DIRECTORY on a link, EXDEV from RESOLVE_BENEATH. The Lstat calls only
// find a name for the message; the refusal came from the kernel.
func (r *Root) openError(rel string, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOTDIR) {
		return &fs.PathError{Op: "open", Path: r.name + "/" + rel, Err: err}
	}
	elems := strings.Split(rel, "/")
	for i := range elems {
		p := r.name + "/" + strings.Join(elems[:i+1], "/")
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return &UnsafeError{Path: p, What: "a symbolic link"}
		}
	}
	if errors.Is(err, unix.ENOTDIR) {
		return &UnsafeError{Path: r.name + "/" + rel, What: "below something that is not a directory"}
	}
	return &UnsafeError{Path: r.name + "/" + rel, What: "reached through a symbolic link"}
}

// Check reports whether rel under r is what modelslot expects there: a real
// directory (dir true) or a regular file. A missing entry is fs.ErrNotExist;
// a link on the way, a FIFO, a device, a socket or the wrong kind is an
// *UnsafeError naming it.
func (r *Root) Check(rel string, dir bool) error {
	fd, err := r.openBeneath(rel, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s/%s: %w", r.name, rel, err)
	}
	return r.wantKind(rel, st.Mode, dir)
}

func (r *Root) wantKind(rel string, mode uint32, dir bool) error {
	kind := mode & unix.S_IFMT
	switch {
	case dir && kind == unix.S_IFDIR, !dir && kind == unix.S_IFREG:
		return nil
	}
	what := map[uint32]string{unix.S_IFLNK: "a symbolic link", unix.S_IFIFO: "a FIFO", unix.S_IFCHR: "a character device",
		unix.S_IFBLK: "a block device", unix.S_IFSOCK: "a socket", unix.S_IFDIR: "a directory", unix.S_IFREG: "a regular file"}[kind]
	if dir {
		what += ", not a directory"
	} else {
		what += ", not a regular file"
	}
	return &UnsafeError{Path: r.name + "/" + rel, What: what}
}

// ReadFile reads the regular file rel under r, at most max bytes (more is an
// error, never a silent cut). It is opened O_NONBLOCK, so a FIFO put in its
// place cannot block the open, and checked with fstat before a byte is read.
func (r *Root) ReadFile(rel string, max int64) ([]byte, error) {
	fd, err := r.openBeneath(rel, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return readRegular(os.NewFile(uintptr(fd), r.name+"/"+rel), func(mode uint32) error {
		return r.wantKind(rel, mode, false)
	}, max)
}

// ReadRegularFile reads name, which must be a regular file and not a link, at
// most max bytes: opened O_NONBLOCK|O_NOFOLLOW and checked with fstat before
// reading, so a FIFO or device in its place is refused instead of blocking.
func ReadRegularFile(name string, max int64) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafeError{Path: name, What: "a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	return readRegular(f, func(mode uint32) error {
		if mode&unix.S_IFMT == unix.S_IFREG {
			return nil
		}
		return &UnsafeError{Path: name, What: "not a regular file"}
	}, max)
}

func readRegular(f *os.File, check func(mode uint32) error, max int64) ([]byte, error) {
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if err := check(st.Mode); err != nil {
		return nil, err
	}
	if st.Size > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed; it was left as it is", f.Name(), st.Size, max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s grew past the %d bytes allowed while read; it was left as it is", f.Name(), max)
	}
	return b, nil
}
