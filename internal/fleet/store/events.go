package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelslot/modelslot/internal/report"
)

// Outcome statuses of a device in a rollout.
const (
	OutcomeInProgress = "in_progress"
	OutcomeSucceeded  = "succeeded"
	OutcomeFailed     = "failed"
)

// Incoming is one message from a device: an event (Event and its JSON as
// received), or a presence change (Presence set; Event, if any, the last event
// the status message repeats).
type Incoming struct {
	Event    *report.Event
	Body     []byte
	Presence *bool
	DeviceID string // for a presence change
	Received time.Time
}

// AddEvent records ev (body is its JSON as received) once: a redelivered
// event_id changes nothing and reports false. In the same transaction it
// updates the device's row and, for an update a rollout ordered, the device's
// outcome in that rollout — a terminal outcome is never overwritten.
func (db *DB) AddEvent(ctx context.Context, ev *report.Event, body []byte, received time.Time) (bool, error) {
	n, err := db.Ingest(ctx, []Incoming{{Event: ev, Body: body, Received: received}})
	return n == 1, err
}

// Ingest records a batch of messages in order, in one transaction (one fsync
// for the batch, which is what lets the controller keep up with a fleet), and
// returns how many events were new. On error nothing of the batch is kept.
func (db *DB) Ingest(ctx context.Context, batch []Incoming) (int, error) {
	added := 0
	err := db.tx(ctx, func(tx *sql.Tx) error {
		for _, in := range batch {
			if in.Event != nil {
				ok, err := db.addEvent(ctx, tx, in.Event, in.Body, in.Received)
				if err != nil {
					return fmt.Errorf("record event %s of %s: %w", in.Event.EventID, in.Event.DeviceID, err)
				}
				if ok {
					added++
				}
			}
			if in.Presence != nil {
				if err := db.setPresence(ctx, tx, in.DeviceID, *in.Presence, in.Received); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

func (db *DB) addEvent(ctx context.Context, tx *sql.Tx, ev *report.Event, body []byte, received time.Time) (bool, error) {
	res, err := db.exec(ctx, tx, `INSERT INTO events (event_id, device_id, model, rollout_id, event, status, target_version, current_version, failure_reason, at, received, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		ev.EventID, ev.DeviceID, ev.Model, ev.RolloutID, ev.Event, ev.Status, ev.TargetVersion, ev.CurrentVersion, ev.FailureReason,
		ms(ev.Timestamp), ms(received), string(body))
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil // seen before
	}
	if ev.Event == report.RolloutEventType || ev.Status == report.StatusRejected || ev.Status == report.StatusNothingToDo {
		// A refused rollout or command, or a command with nothing to do,
		// changed nothing on the device (and a rejected command's model may
		// not exist there): history only.
		return true, nil
	}
	if err := db.upsertDevice(ctx, tx, ev, received); err != nil {
		return false, err
	}
	if ev.RolloutID == "" {
		return true, nil
	}
	return true, db.recordOutcome(ctx, tx, ev.RolloutID, ev.DeviceID, outcomeOf(ev.Status, ev.FailureReason), ev.FailureReason, received)
}

// reasonDownload is reason.Download: a download that failed for network
// reasons. The agent retries it (the command stays queued), so for the
// rollout the device is still in progress; progress_timeout bounds it.
const reasonDownload = "download_failed"

func outcomeOf(status, reason string) string {
	switch {
	case status == report.StatusSuccess:
		return OutcomeSucceeded
	case status == report.StatusFailed && reason == reasonDownload:
		return OutcomeInProgress
	case status == report.StatusFailed, status == report.StatusRolledBack:
		return OutcomeFailed
	}
	return OutcomeInProgress
}

func (db *DB) upsertDevice(ctx context.Context, tx *sql.Tx, ev *report.Event, at time.Time) error {
	_, err := db.exec(ctx, tx, `INSERT INTO devices (device_id, model, version, status, reason, online, last_seen)
		VALUES (?, ?, ?, ?, ?, 1, ?)
		ON CONFLICT (device_id, model) DO UPDATE SET version = excluded.version, status = excluded.status,
			reason = excluded.reason, online = 1, last_seen = excluded.last_seen`,
		ev.DeviceID, ev.Model, ev.CurrentVersion, ev.Status, ev.FailureReason, ms(at))
	return err
}

// recordOutcome moves a device's outcome forward; a terminal one stays.
func (db *DB) recordOutcome(ctx context.Context, tx *sql.Tx, rolloutID, deviceID, status, reason string, at time.Time) error {
	_, err := db.exec(ctx, tx, `INSERT INTO outcomes (rollout_id, device_id, status, reason, started, updated)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (rollout_id, device_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, updated = excluded.updated
		WHERE outcomes.status = 'in_progress'`,
		rolloutID, deviceID, status, reason, ms(at), ms(at))
	return err
}

// SetPresence records a device's retained status (online, or its last will).
func (db *DB) SetPresence(ctx context.Context, deviceID string, online bool, at time.Time) error {
	_, err := db.Ingest(ctx, []Incoming{{Presence: &online, DeviceID: deviceID, Received: at}})
	return err
}

func (db *DB) setPresence(ctx context.Context, tx *sql.Tx, deviceID string, online bool, at time.Time) error {
	on := 0
	if online {
		on = 1
	}
	_, err := db.exec(ctx, tx, `UPDATE devices SET online = ?, last_seen = ? WHERE device_id = ?`, on, ms(at), deviceID)
	if err != nil {
		return fmt.Errorf("record presence of %s: %w", deviceID, err)
	}
	return nil
}

// Device is one model on one device, as its last event left it.
type Device struct {
	ID       string    `json:"device_id"`
	Model    string    `json:"model"`
	Version  string    `json:"version"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen"`
}

// Devices lists the devices that run model ("" for every model), by id.
func (db *DB) Devices(ctx context.Context, model string) ([]Device, error) {
	return db.devices(ctx, `WHERE ? = '' OR model = ?`, model, model)
}

// Device lists one device's models (none when the device is unknown).
func (db *DB) Device(ctx context.Context, id string) ([]Device, error) {
	return db.devices(ctx, `WHERE device_id = ?`, id)
}

func (db *DB) devices(ctx context.Context, where string, args ...any) ([]Device, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT device_id, model, version, status, reason, online, last_seen
		FROM devices `+where+` ORDER BY device_id, model`), args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var online int
		var seen int64
		if err := rows.Scan(&d.ID, &d.Model, &d.Version, &d.Status, &d.Reason, &online, &seen); err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		d.Online, d.LastSeen = online == 1, fromMS(seen)
		out = append(out, d)
	}
	return out, rows.Err()
}

// EventCount counts the events recorded (of a rollout, or all with "").
func (db *DB) EventCount(ctx context.Context, rolloutID string) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM events WHERE ? = '' OR rollout_id = ?`), rolloutID, rolloutID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Refusals counts the devices' refusals of a rollout's documents by reason.
func (db *DB) Refusals(ctx context.Context, rolloutID string) (map[string]int, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT failure_reason, COUNT(*) FROM events
		WHERE rollout_id = ? AND event = ? GROUP BY failure_reason`), rolloutID, report.RolloutEventType)
	if err != nil {
		return nil, fmt.Errorf("count refusals: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var reason string
		var n int
		if err := rows.Scan(&reason, &n); err != nil {
			return nil, fmt.Errorf("count refusals: %w", err)
		}
		out[reason] = n
	}
	return out, rows.Err()
}

// EventRecord is one recorded event, for the audit trail of a rollout and a
// device's history.
type EventRecord struct {
	EventID        string    `json:"event_id"`
	DeviceID       string    `json:"device_id"`
	Model          string    `json:"model"`
	RolloutID      string    `json:"rollout_id,omitempty"`
	CommandID      string    `json:"command_id,omitempty"`
	Event          string    `json:"event"`
	Status         string    `json:"status"`
	TargetVersion  string    `json:"target_version"`
	CurrentVersion string    `json:"current_version,omitempty"`
	FailureReason  string    `json:"failure_reason,omitempty"`
	Logs           []string  `json:"logs,omitempty"`
	At             time.Time `json:"timestamp"`
	Received       time.Time `json:"received"`
}

const eventColumns = `event_id, device_id, model, rollout_id, event, status, target_version, current_version, failure_reason, at, received, body`

// Events lists the events recorded under a rollout (of one device when
// device is set), in the order they were received, at most limit.
func (db *DB) Events(ctx context.Context, rolloutID, device string, limit int) ([]EventRecord, error) {
	return db.events(ctx, `WHERE rollout_id = ? AND (? = '' OR device_id = ?) ORDER BY received, at, event_id LIMIT ?`,
		rolloutID, device, device, limit)
}

// DeviceEvents lists the newest limit events of one device, under any
// rollout or command or none, newest first.
func (db *DB) DeviceEvents(ctx context.Context, device string, limit int) ([]EventRecord, error) {
	return db.events(ctx, `WHERE device_id = ? ORDER BY received DESC, at DESC, event_id DESC LIMIT ?`, device, limit)
}

func (db *DB) events(ctx context.Context, where string, args ...any) ([]EventRecord, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT `+eventColumns+` FROM events `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []EventRecord{}
	for rows.Next() {
		var e EventRecord
		var at, received int64
		var body string
		if err := rows.Scan(&e.EventID, &e.DeviceID, &e.Model, &e.RolloutID, &e.Event, &e.Status, &e.TargetVersion,
			&e.CurrentVersion, &e.FailureReason, &at, &received, &body); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.At, e.Received = fromMS(at), fromMS(received)
		// What has no column of its own is read from the event as received
		// (it parsed as JSON then; a body that does not now leaves them empty).
		var extra struct {
			CommandID string   `json:"command_id"`
			Logs      []string `json:"logs"`
		}
		if json.Unmarshal([]byte(body), &extra) == nil {
			e.CommandID, e.Logs = extra.CommandID, extra.Logs
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
