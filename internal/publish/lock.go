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
	what := "a prune"
	if exclusive {
		what = "a publish"
	}
	return lockFile(ctx, repo, LockName, exclusive, what)
}

// ModelLockName is the lock file in a model's directory. A publish holds it
// exclusive from picking the sequence to moving the channel, so two
// publishes of one model never pick the same sequence (devices would take
// the second for a replay of the first); publishes of different models
// still run side by side.
const ModelLockName = ".publish-lock"

// lockModel takes model's publish lock in repo.
func lockModel(ctx context.Context, repo, model string) (func(), error) {
	return lockFile(ctx, filepath.Join(repo, model), ModelLockName, true, "another publish of "+model)
}

// lockFile takes flock(2) on dir/base, shared or exclusive, waiting for it
// until ctx ends; what names the holder it waits for.
func lockFile(ctx context.Context, dir, base string, exclusive bool, what string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	name := filepath.Join(dir, base)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the repository: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
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
