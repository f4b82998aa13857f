package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelslot/modelslot/internal/rollout"
)

// Rollout is a rollout as the controller keeps it: the document, the signed
// envelope it last published, and when the current stage opened (its soak
// counts from there, across controller restarts).
type Rollout struct {
	Doc         rollout.Rollout
	Envelope    []byte
	StageOpened time.Time
	Created     time.Time
	Updated     time.Time
}

// CreateRollout stores a new rollout (revision 1 and its history row).
func (db *DB) CreateRollout(ctx context.Context, r *Rollout) error {
	doc, err := json.Marshal(&r.Doc)
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.Doc.ID, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM rollouts WHERE id = ?`), r.Doc.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w; choose another id", ErrExists)
		}
		_, err := db.exec(ctx, tx, `INSERT INTO rollouts (id, model, channel, revision, state, stage, stage_opened, doc, envelope, created, updated)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Doc.ID, r.Doc.Model, r.Doc.Channel, r.Doc.Revision, r.Doc.State, r.Doc.Stage, ms(r.StageOpened),
			string(doc), string(r.Envelope), ms(r.Created), ms(r.Updated))
		if err != nil {
			return err
		}
		return db.addHistory(ctx, tx, &r.Doc, r.Updated)
	})
	if err != nil {
		return fmt.Errorf("create rollout %s: %w", r.Doc.ID, err)
	}
	return nil
}

// SaveRollout stores a new revision of a rollout, only if the stored one is
// still prev (ErrConflict otherwise), with its history row.
func (db *DB) SaveRollout(ctx context.Context, r *Rollout, prev uint64) error {
	doc, err := json.Marshal(&r.Doc)
	if err != nil {
		return fmt.Errorf("save rollout %s: %w", r.Doc.ID, err)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE rollouts SET revision = ?, state = ?, stage = ?, stage_opened = ?, doc = ?, envelope = ?, updated = ?
			WHERE id = ? AND revision = ?`,
			r.Doc.Revision, r.Doc.State, r.Doc.Stage, ms(r.StageOpened), string(doc), string(r.Envelope), ms(r.Updated), r.Doc.ID, prev)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("%w: rollout %s is no longer at revision %d", ErrConflict, r.Doc.ID, prev)
		}
		return db.addHistory(ctx, tx, &r.Doc, r.Updated)
	})
	if err != nil {
		return fmt.Errorf("save rollout %s: %w", r.Doc.ID, err)
	}
	return nil
}

func (db *DB) addHistory(ctx context.Context, tx *sql.Tx, r *rollout.Rollout, at time.Time) error {
	_, err := db.exec(ctx, tx, `INSERT INTO rollout_history (rollout_id, revision, state, stage, reason, at) VALUES (?, ?, ?, ?, ?, ?)`,
		r.ID, r.Revision, r.State, r.Stage, r.Reason, ms(at))
	return err
}

// GetRollout reads one rollout.
func (db *DB) GetRollout(ctx context.Context, id string) (*Rollout, error) {
	rs, err := db.rollouts(ctx, `WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("rollout %s: %w", id, ErrNotFound)
	}
	return rs[0], nil
}

// Rollouts lists every rollout, oldest first.
func (db *DB) Rollouts(ctx context.Context) ([]*Rollout, error) { return db.rollouts(ctx, "") }

func (db *DB) rollouts(ctx context.Context, where string, args ...any) ([]*Rollout, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT doc, envelope, stage_opened, created, updated FROM rollouts `+where+` ORDER BY created, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("read rollouts: %w", err)
	}
	defer rows.Close()
	var out []*Rollout
	for rows.Next() {
		var doc, env string
		var opened, created, updated int64
		if err := rows.Scan(&doc, &env, &opened, &created, &updated); err != nil {
			return nil, fmt.Errorf("read rollouts: %w", err)
		}
		r := &Rollout{Envelope: []byte(env), StageOpened: fromMS(opened), Created: fromMS(created), Updated: fromMS(updated)}
		if err := json.Unmarshal([]byte(doc), &r.Doc); err != nil {
			return nil, fmt.Errorf("read rollouts: a stored document is not JSON: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// History is one revision of a rollout: the audit trail.
type History struct {
	Revision uint64    `json:"revision"`
	State    string    `json:"state"`
	Stage    int       `json:"stage"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// RolloutHistory lists a rollout's revisions in order.
func (db *DB) RolloutHistory(ctx context.Context, id string) ([]History, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT revision, state, stage, reason, at FROM rollout_history WHERE rollout_id = ? ORDER BY revision`), id)
	if err != nil {
		return nil, fmt.Errorf("rollout history: %w", err)
	}
	defer rows.Close()
	var out []History
	for rows.Next() {
		var h History
		var at int64
		if err := rows.Scan(&h.Revision, &h.State, &h.Stage, &h.Reason, &at); err != nil {
			return nil, fmt.Errorf("rollout history: %w", err)
		}
		h.At = fromMS(at)
		out = append(out, h)
	}
	return out, rows.Err()
}

// Outcome is how far one device got in a rollout.
type Outcome struct {
	DeviceID string    `json:"device_id"`
	Status   string    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
}

// Outcomes lists the devices that started a rollout.
func (db *DB) Outcomes(ctx context.Context, id string) ([]Outcome, error) {
	rows, err := db.sql.QueryContext(ctx, db.q(`SELECT device_id, status, reason, started, updated FROM outcomes WHERE rollout_id = ? ORDER BY device_id`), id)
	if err != nil {
		return nil, fmt.Errorf("rollout outcomes: %w", err)
	}
	defer rows.Close()
	var out []Outcome
	for rows.Next() {
		var o Outcome
		var started, updated int64
		if err := rows.Scan(&o.DeviceID, &o.Status, &o.Reason, &started, &updated); err != nil {
			return nil, fmt.Errorf("rollout outcomes: %w", err)
		}
		o.Started, o.Updated = fromMS(started), fromMS(updated)
		out = append(out, o)
	}
	return out, rows.Err()
}

// TimeOut marks the devices of a rollout that started before deadline and are
// still in progress as failed (reason "timeout"); it returns how many.
func (db *DB) TimeOut(ctx context.Context, id string, deadline, now time.Time) (int, error) {
	res, err := db.exec(ctx, nil, `UPDATE outcomes SET status = 'failed', reason = 'timeout', updated = ?
		WHERE rollout_id = ? AND status = 'in_progress' AND started < ?`, ms(now), id, ms(deadline))
	if err != nil {
		return 0, fmt.Errorf("time out devices of %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
