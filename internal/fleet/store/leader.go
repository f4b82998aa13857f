package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// leaderKey is the pg_advisory_lock key every modelslot controller of one
// database contends for ("modelslot" in ASCII, as an int64).
const leaderKey = 0x6d6f64656c736c6f

// Leader blocks until this process is the only controller of the database,
// retrying every poll. The returned channel is closed when leadership is lost
// (the PostgreSQL session holding the lock died): the controller must stop
// acting at once. release gives it up.
//
// PostgreSQL: a session-level advisory lock on a connection of its own, so it
// lasts exactly as long as that session. SQLite: an flock on <file>.lock, so
// a second controller on the same file waits (SQLite itself would only
// serialise writes, not decisions).
func (db *DB) Leader(ctx context.Context, poll time.Duration) (lost <-chan struct{}, release func(), err error) {
	if db.postgres {
		return db.pgLeader(ctx, poll)
	}
	return db.fileLeader(ctx, poll)
}

func (db *DB) fileLeader(ctx context.Context, poll time.Duration) (<-chan struct{}, func(), error) {
	f, err := os.OpenFile(db.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("leader lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, nil, fmt.Errorf("leader lock %s: %w", f.Name(), err)
		}
		slog.Info("fleet: another controller holds the database; waiting", "lock", f.Name())
		if err := sleep(ctx, poll); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return make(chan struct{}), func() { f.Close() }, nil // a local flock cannot be lost
}

func (db *DB) pgLeader(ctx context.Context, poll time.Duration) (<-chan struct{}, func(), error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("leader lock: %w", err)
	}
	for {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(leaderKey)).Scan(&got); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("leader lock: %w", err)
		}
		if got {
			break
		}
		slog.Info("fleet: another controller leads this database; standing by")
		if err := sleep(ctx, poll); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	lost := make(chan struct{})
	watch, stop := context.WithCancel(context.Background())
	go func() {
		defer close(lost)
		for sleep(watch, poll) == nil {
			if err := conn.PingContext(watch); err != nil && watch.Err() == nil {
				slog.Error("fleet: the database session holding the leader lock is gone; stopping", "err", err)
				return
			}
		}
	}()
	release := func() {
		stop()
		<-lost
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(leaderKey))
		conn.Close()
	}
	return lost, release, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
