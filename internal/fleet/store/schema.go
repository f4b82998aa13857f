package store

import (
	"context"
	"database/sql"
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

// backfills fill, per dialect ([sqlite, postgres]), what a migration added
// from the rows already there, in the migration's transaction: every stored
// body parsed as JSON when it was received.
var backfills = map[int][2]string{
	2: {`UPDATE events SET current_version = COALESCE(json_extract(body, '$.current_version'), '')`,
		`UPDATE events SET current_version = COALESCE(body::jsonb->>'current_version', '')`},
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
			if b, ok := backfills[v]; ok {
				if _, err := tx.ExecContext(ctx, b[db.dialectIndex()]); err != nil {
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

// dialectIndex picks a dialect's entry of a [sqlite, postgres] pair.
func (db *DB) dialectIndex() int {
	if db.postgres {
		return 1
	}
	return 0
}
