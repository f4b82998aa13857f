package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockName is the lock file at the root of a repository. Publish holds it
// shared for its whole run (from reading the catalogs to moving the channel),
// so publishes run side by side; prune holds it exclusive, so it never
// removes a pack that a running publish has decided to reference. flock(2)
// on a local filesystem; on NFS it depends on the server (docs/repository.md § Prune).
const LockName = ".modelslot-lock"

// lockPoll is how often a waiting lock is tried again.
var lockPoll = 50 * time.Millisecond

// lockRepo takes the repository's lock, waiting for it until ctx ends, and
// returns its release.
func lockRepo(ctx context.Context, repo string, exclusive bool) (func(), error) {
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return nil, err
	}
	name := filepath.Join(repo, LockName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the repository: %w", err)
	}
	how, what := syscall.LOCK_SH, "a prune"
	if exclusive {
		how, what = syscall.LOCK_EX, "a publish"
	}
	for logged := false; ; {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock the repository (%s): %w", name, err)
		}
		if !logged {
			slog.Info("waiting for the repository lock: "+what+" is running", "lock", name)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock the repository (%s), held by %s: %w", name, what, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}
