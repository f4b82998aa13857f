package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// migrations are applied in order, each once, in one transaction with its
// record in schema_migrations. Never edit one that has shipped; append.
// Times are milliseconds since the epoch (BIGINT): the same in both dialects.
var migrations = []string{
	`CREATE TABLE devices (
		device_id TEXT NOT NULL,
		model     TEXT NOT NULL,
		version   TEXT NOT NULL DEFAULT '',
		status    TEXT NOT NULL DEFAULT '',
		reason    TEXT NOT NULL DEFAULT '',
		online    INTEGER NOT NULL DEFAULT 0,
		last_seen BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (device_id, model));
	CREATE TABLE events (
		event_id       TEXT PRIMARY KEY,
		device_id      TEXT NOT NULL,
		model          TEXT NOT NULL,
		rollout_id     TEXT NOT NULL DEFAULT '',
		event          TEXT NOT NULL,
		status         TEXT NOT NULL,
		target_version TEXT NOT NULL DEFAULT '',
		failure_reason TEXT NOT NULL DEFAULT '',
		at             BIGINT NOT NULL,
		received       BIGINT NOT NULL,
		body           TEXT NOT NULL);
	CREATE INDEX events_rollout ON events (rollout_id, device_id);
	CREATE TABLE rollouts (
		id           TEXT PRIMARY KEY,
		model        TEXT NOT NULL,
		channel      TEXT NOT NULL,
		revision     BIGINT NOT NULL,
		state        TEXT NOT NULL,
		stage        INTEGER NOT NULL,
		stage_opened BIGINT NOT NULL,
		doc          TEXT NOT NULL,
		envelope     TEXT NOT NULL,
		created      BIGINT NOT NULL,
		updated      BIGINT NOT NULL);
	CREATE TABLE rollout_history (
		rollout_id TEXT NOT NULL,
		revision   BIGINT NOT NULL,
		state      TEXT NOT NULL,
		stage      INTEGER NOT NULL,
		reason     TEXT NOT NULL,
		at         BIGINT NOT NULL,
		PRIMARY KEY (rollout_id, revision));
	CREATE TABLE outcomes (
		rollout_id TEXT NOT NULL,
		device_id  TEXT NOT NULL,
		status     TEXT NOT NULL,
		reason     TEXT NOT NULL DEFAULT '',
		started    BIGINT NOT NULL,
		updated    BIGINT NOT NULL,
		PRIMARY KEY (rollout_id, device_id))`,
	// 2: the version each event left its device on (the dashboard's
	// versions-over-time chart), and a device's history read by device.
	`ALTER TABLE events ADD COLUMN current_version TEXT NOT NULL DEFAULT '';
	CREATE INDEX events_device ON events (device_id, received)`,
}

// backfills fill what a migration added from the rows already there, in the
// migration's transaction.
var backfills = map[int]func(context.Context, *DB, *sql.Tx) error{2: backfillVersions}

// backfillVersions reads each stored event's current_version from its body
// with the parser that accepted it (encoding/json), not the database's: a
// body PostgreSQL's jsonb would refuse (a \u0000 in a log line) must not stop
// the controller from starting; one that does not parse keeps no version.
func backfillVersions(ctx context.Context, db *DB, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT event_id, body FROM events`)
	if err != nil {
		return err
	}
	found := map[string]string{}
	for rows.Next() {
		var id, body string
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return err
		}
		var ev struct {
			CurrentVersion string `json:"current_version"`
		}
		if json.Unmarshal([]byte(body), &ev) == nil && ev.CurrentVersion != "" {
			found[id] = ev.CurrentVersion
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for id, v := range found {
		if _, err := db.exec(ctx, tx, `UPDATE events SET current_version = ? WHERE event_id = ?`, v, id); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.exec(ctx, nil, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	var have int
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("database: schema version %d is newer than this modelslot knows (%d); run the newer controller", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := db.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			if fill, ok := backfills[v]; ok {
				if err := fill(ctx, db, tx); err != nil {
					return err
				}
			}
			_, err := db.exec(ctx, tx, `INSERT INTO schema_migrations (version) VALUES (?)`, v)
			return err
		})
		if err != nil {
			return fmt.Errorf("database: migration %d: %w", v, err)
		}
	}
	return nil
}
