// Package store is the fleet controller's database: devices, rollouts, their
// history and every device event, in SQLite (the default, a file in the
// controller's state dir, WAL) or PostgreSQL. One schema and one set of
// queries serve both; the dialects differ only in placeholders and in how a
// controller becomes the single leader (pg_advisory_lock, or a file lock next
// to the SQLite file). Every change of a rollout is an optimistic update on its
// revision, so two writers can never both move it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/modelslot/modelslot/internal/netconf"
)

// Kinds of errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict: the rollout changed since it was read (another writer, or
	// a lost leadership); read it again.
	ErrConflict = errors.New("changed concurrently")
)

// DB is an open controller database.
type DB struct {
	sql      *sql.DB
	postgres bool
	path     string // the SQLite file; "" for PostgreSQL
	url      string // PostgreSQL URL, for the leader's own connection
}

// Open connects to url — "postgres://…" or "postgresql://…" for PostgreSQL,
// else a SQLite file path (or "sqlite:PATH") — and brings the schema up to
// date.
func Open(ctx context.Context, dbURL string) (*DB, error) {
	db := &DB{}
	var err error
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		db.postgres, db.url = true, dbURL
		db.sql, err = sql.Open("pgx", dbURL)
	} else {
		db.path = strings.TrimPrefix(dbURL, "sqlite:")
		if !filepath.IsAbs(db.path) {
			return nil, fmt.Errorf("open database %q: want postgres://… or an absolute SQLite file path", dbURL)
		}
		// One connection: SQLite has one writer, and the pragmas are per connection.
		db.sql, err = sql.Open("sqlite", "file:"+db.path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)")
		db.sql.SetMaxOpenConns(1)
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", Redact(dbURL), err)
	}
	if err := db.sql.PingContext(ctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("open database %s: %w; check the [fleet] database setting and that the server runs", Redact(dbURL), err)
	}
	if err := db.migrate(ctx); err != nil {
		db.sql.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the connections.
func (db *DB) Close() error { return db.sql.Close() }

// Dialect names the database kind, for logs and metrics.
func (db *DB) Dialect() string {
	if db.postgres {
		return "postgres"
	}
	return "sqlite"
}

// q rewrites the ? placeholders of a query for PostgreSQL ($1, $2, …).
func (db *DB) q(query string) string {
	if !db.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (db *DB) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if tx != nil {
		return tx.ExecContext(ctx, db.q(query), args...)
	}
	return db.sql.ExecContext(ctx, db.q(query), args...)
}

func (db *DB) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	return nil
}

// Redact hides the password of a database URL, for every message that names one.
func Redact(raw string) string { return netconf.Redact(raw) }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
