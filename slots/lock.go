package slots

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
)

// ErrBusy means another process holds the model's lock. The command line maps it
// to exit code 5.
var ErrBusy = errors.New("busy")

// Holder is what a lock holder writes into the lock file so that a second
// process can say who is in the way.
type Holder struct {
	PID   int       `json:"pid"`
	Op    string    `json:"op"`
	Since time.Time `json:"since"`
}

// BusyError names the process that holds the lock.
type BusyError struct {
	Path   string
	Holder *Holder // nil when the holder wrote nothing readable
}

func (e *BusyError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("another modelslot process holds %s; wait for it to finish", e.Path)
	}
	return fmt.Sprintf("pid %d (%s, since %s) holds %s; wait for it to finish or stop it",
		e.Holder.PID, e.Holder.Op, e.Holder.Since.Format(time.RFC3339), e.Path)
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// lock is an exclusive flock on the model's lock file. The kernel drops it when
// the process dies, so a crash never leaves a stale lock behind.
type lock struct{ f *os.File }

// acquireLock takes the lock without waiting. On a read-only filesystem the file
// is opened read-only (flock works on it), so read-only commands still run.
func acquireLock(path, op string) (*lock, error) {
	f, err := openLockFile(path, os.O_RDWR|os.O_CREATE)
	writable := err == nil
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) {
		f, err = openLockFile(path, os.O_RDONLY)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &BusyError{Path: path, Holder: readHolder(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if writable {
		// Best effort: the holder note only improves a second process's message.
		b, _ := json.Marshal(Holder{PID: os.Getpid(), Op: op, Since: time.Now().UTC()})
		if f.Truncate(0) == nil {
			f.WriteAt(append(b, '\n'), 0)
		}
	}
	return &lock{f: f}, nil
}

// openLockFile opens the lock file without following a link and without
// blocking (a FIFO in its place would block a plain open forever), and
// refuses anything but a regular file.
func openLockFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &durable.UnsafeError{Path: path, What: "a symbolic link"}
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, &durable.UnsafeError{Path: path, What: "a " + fi.Mode().Type().String() + " entry, not a regular file"}
	}
	return f, nil
}

func readHolder(path string) *Holder {
	b, err := durable.ReadRegularFile(path, 64<<10)
	if err != nil {
		return nil
	}
	var h Holder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

func (l *lock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// FileLock is an exclusive lock on a file of its own, for what several models
// share (one inference unit serves them all). Release it with Close.
type FileLock struct{ l *lock }

// LockFile takes the lock on path without waiting: a *BusyError (ErrBusy) names
// the holder when another process has it. op names the operation for that
// message.
func LockFile(path, op string) (*FileLock, error) {
	l, err := acquireLock(path, op)
	if err != nil {
		return nil, err
	}
	return &FileLock{l: l}, nil
}

// Close releases the lock.
func (f *FileLock) Close() error {
	if f == nil {
		return nil
	}
	return f.l.release()
}

// HeldBy reports whether another process holds the model's lock now, and who,
// without writing anything: it takes a shared lock for the look and drops it.
// A store that was never opened has no lock file and is not held.
func HeldBy(cfg Config) (held bool, holder *Holder, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return false, nil, err
	}
	path := filepath.Join(cfg.Dir, lockFile)
	f, err := openLockFile(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return true, readHolder(path), nil
		}
		return false, nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return false, nil, nil
}
