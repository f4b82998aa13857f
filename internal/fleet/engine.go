package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
)

// evaluateAll moves every running rollout as far as its counts allow, keeps
// every document fresh, and publishes what changed.
func (c *Controller) evaluateAll(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, err := c.DB.Rollouts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	newest := c.newest(rs)
	for _, r := range rs {
		if err := c.evaluate(ctx, r, newest[c.topic(r)] == r); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", r.Doc.ID, err))
		}
	}
	c.publishLocked(rs)
	return errors.Join(errs...)
}

// evaluate applies r's thresholds if it runs. current: r is the newest
// rollout of its topic, the one devices read; only it is kept fresh (a
// superseded document is never read again, so re-signing it would only grow
// its history).
func (c *Controller) evaluate(ctx context.Context, r *store.Rollout, current bool) error {
	now := c.now()
	if r.Doc.State == rollout.StateRunning {
		n, err := c.DB.TimeOut(ctx, r.Doc.ID, now.Add(-time.Duration(c.Fleet.ProgressTimeout)), now)
		if err != nil {
			return err
		}
		if n > 0 {
			slog.Warn("fleet: devices stuck in progress counted as failed", "rollout", r.Doc.ID, "devices", n)
		}
		t, err := c.tally(ctx, r)
		if err != nil {
			return err
		}
		v, why := r.Doc.Evaluate(t.Tally, r.StageOpened, now)
		if v != rollout.VerdictWait {
			return c.transition(ctx, r, why, verdictChange(v, c.Fleet.HaltAction))
		}
	}
	if half := r.Doc.IssuedAt.Add(r.Doc.ExpiresAt.Sub(r.Doc.IssuedAt) / 2); current && now.After(half) {
		return c.transition(ctx, r, r.Doc.Reason, func(*store.Rollout, time.Time) {}) // a fresh copy, same content
	}
	return nil
}

func verdictChange(v rollout.Verdict, haltAction string) func(*store.Rollout, time.Time) {
	return func(r *store.Rollout, now time.Time) {
		switch v {
		case rollout.VerdictHalt:
			r.Doc.State = rollout.StateHalted
			if haltAction == "abort" {
				r.Doc.State = rollout.StateAborted
			}
		case rollout.VerdictAdvance:
			r.Doc.Stage++
			r.StageOpened = now
		case rollout.VerdictComplete:
			r.Doc.State = rollout.StateCompleted
		}
	}
}

// transition saves the next revision of r — change applied, reason set, fresh
// issue and expiry, signed — on the revision read. Publishing follows; the
// saved envelope is what will be published, even after a crash in between.
// One clock reading serves the change and the revision, so a stage's opening
// time and its history row agree to the millisecond.
func (c *Controller) transition(ctx context.Context, r *store.Rollout, reason string, change func(*store.Rollout, time.Time)) error {
	now := c.now().Truncate(time.Millisecond) // what the database keeps
	next := *r
	next.Doc.Stages = append([]rollout.Stage(nil), r.Doc.Stages...)
	change(&next, now)
	next.Doc.Revision++
	next.Doc.Reason = reason
	next.Doc.IssuedAt, next.Doc.ExpiresAt = now, now.Add(time.Duration(c.Fleet.DocumentTTL))
	next.Updated = now
	env, err := rollout.Sign(&next.Doc, c.Key)
	if err != nil {
		return err
	}
	next.Envelope = env
	if err := c.DB.SaveRollout(ctx, &next, r.Doc.Revision); err != nil {
		return err
	}
	if next.Doc.State != r.Doc.State || next.Doc.Stage != r.Doc.Stage {
		slog.Info("fleet: rollout moved", "rollout", next.Doc.ID, "revision", next.Doc.Revision,
			"state", next.Doc.State, "stage", next.Doc.Stage, "reason", reason)
	}
	*r = next
	return nil
}

// Counts is a rollout's tally and the failures behind it.
type Counts struct {
	rollout.Tally
	Failures map[string]int // by failure reason
	Stages   []StageCount   // every stage, opened or not
}

// StageCount is how the devices of one stage stand. Devices count in the
// stage their bucket puts them in (not cumulatively): the stages' devices add
// up to the model's devices the rollout covers.
type StageCount struct {
	Devices    int `json:"devices"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	InProgress int `json:"in_progress"`
	Waiting    int `json:"waiting"` // not started (yet)
}

// tally counts the known devices of the rollout's model that the opened
// stages cover. A device already on the target without having taken it under
// this rollout (installed by hand) counts as succeeded: it is where the
// rollout wants it. Stages counts every stage the same way.
func (c *Controller) tally(ctx context.Context, r *store.Rollout) (Counts, error) {
	devs, err := c.DB.Devices(ctx, r.Doc.Model)
	if err != nil {
		return Counts{}, err
	}
	outs, err := c.DB.Outcomes(ctx, r.Doc.ID)
	if err != nil {
		return Counts{}, err
	}
	byDevice := map[string]store.Outcome{}
	for _, o := range outs {
		byDevice[o.DeviceID] = o
	}
	t := Counts{Failures: map[string]int{}, Stages: make([]StageCount, len(r.Doc.Stages))}
	for _, d := range devs {
		o, ok := byDevice[d.ID]
		result := resultOf(o, ok, d, r.Doc.Target.Version)
		if s := r.Doc.StageOf(d.ID); s >= 0 {
			t.Stages[s].add(result)
		}
		if !r.Doc.InCohort(d.ID) {
			continue
		}
		t.Cohort++
		switch result {
		case store.OutcomeSucceeded:
			t.Succeeded++
		case store.OutcomeFailed:
			t.Failed++
			t.Failures[reasonCode(o.Reason)]++
		}
	}
	return t, nil
}

// outcomeWaiting: a device that has not started the rollout.
const outcomeWaiting = "waiting"

// resultOf is where device d stands in a rollout of target: its outcome, or
// succeeded when it is already on the target without one.
func resultOf(o store.Outcome, ok bool, d store.Device, target string) string {
	switch {
	case ok:
		return o.Status
	case d.Version == target:
		return store.OutcomeSucceeded
	}
	return outcomeWaiting
}

func (s *StageCount) add(result string) {
	s.Devices++
	switch result {
	case store.OutcomeSucceeded:
		s.Succeeded++
	case store.OutcomeFailed:
		s.Failed++
	case store.OutcomeInProgress:
		s.InProgress++
	default:
		s.Waiting++
	}
}

func reasonCode(r string) string {
	if r == "" {
		return "unknown"
	}
	return r
}

// publishLocked puts the newest rollout of every model and channel on its
// retained topic and in its static file, unless that revision is there
// already. A failure is retried at the next tick: devices keep the previous
// revision meanwhile, which is safe (an older document starts nothing newer).
func (c *Controller) publishLocked(rs []*store.Rollout) {
	for topic, r := range c.newest(rs) {
		if c.published[topic] == r.Doc.Revision {
			continue
		}
		if err := c.writeStatic(r); err != nil {
			slog.Error("fleet: could not write the rollout document file", "rollout", r.Doc.ID, "err", err)
			continue
		}
		tok := c.mqtt.Publish(topic, 1, true, r.Envelope)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			slog.Warn("fleet: could not publish the rollout document; trying again", "topic", topic, "err", tok.Error())
			continue
		}
		c.published[topic] = r.Doc.Revision
	}
}

func (c *Controller) topic(r *store.Rollout) string {
	return report.RolloutTopic(c.Prefix, r.Doc.Model, r.Doc.Channel)
}

// newest maps each topic to its newest rollout (rs is oldest first).
func (c *Controller) newest(rs []*store.Rollout) map[string]*store.Rollout {
	m := map[string]*store.Rollout{}
	for _, r := range rs {
		m[c.topic(r)] = r
	}
	return m
}

// republish forgets what was published, so the next evaluation publishes
// every current document again.
func (c *Controller) republish() {
	c.mu.Lock()
	clear(c.published)
	c.mu.Unlock()
	c.wake()
}

// staticPath is where the document of model/channel is served from as a file:
// <state_dir>/public/rollouts/<model>/<channel>.json.
func (c *Controller) staticPath(model, channel string) string {
	return filepath.Join(c.Fleet.StateDir, "public", "rollouts", model, channel+".json")
}

func (c *Controller) writeStatic(r *store.Rollout) error {
	p := c.staticPath(r.Doc.Model, r.Doc.Channel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return durable.WriteFile(p, r.Envelope, 0o644)
}
