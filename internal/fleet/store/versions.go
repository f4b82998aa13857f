package store

import (
	"context"
	"fmt"
	"time"
)

// VersionChange is a device's model found on a version it was not on in its
// previous event (or its first event): the points of the versions-over-time
// chart.
type VersionChange struct {
	DeviceID string    `json:"device_id"`
	Version  string    `json:"version"`
	At       time.Time `json:"received"`
}

// VersionChanges lists, oldest first, every change of version that the
// events of model's devices show. Only the changes leave the database (a
// window over each device's events), so a chart of a large fleet reads a few
// rows per device, not every event. Events without a version (a device that
// has none yet) are skipped.
func (db *DB) VersionChanges(ctx context.Context, model string) ([]VersionChange, error) {
	// The outer order is the window's, so a device's changes replay in the
	// order they were compared in, even within one millisecond.
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT device_id, current_version, received FROM (
			SELECT device_id, current_version, received, at, event_id,
				LAG(current_version) OVER (PARTITION BY device_id ORDER BY received, at, event_id) AS prev
			FROM events WHERE model = ? AND current_version <> '') x
		WHERE prev IS NULL OR prev <> current_version ORDER BY received, at, event_id`), model)
	if err != nil {
		return nil, fmt.Errorf("version changes of %s: %w", model, err)
	}
	defer rows.Close()
	out := []VersionChange{}
	for rows.Next() {
		var c VersionChange
		var at int64
		if err := rows.Scan(&c.DeviceID, &c.Version, &at); err != nil {
			return nil, fmt.Errorf("version changes of %s: %w", model, err)
		}
		c.At = fromMS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}
