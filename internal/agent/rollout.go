package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// errGated marks a rollout command that its rollout no longer allows (paused,
// halted, aborted, stale, outside the window): it is dropped without running,
// and queued again once the rollout allows it.
var errGated = errors.New("not allowed by its rollout now")

// recheck bounds how long a follower sleeps between two looks at its
// document: expiry, the maintenance window and deferral pass with time alone.
const recheck = time.Minute

// follower follows the rollout of one model's channel (docs/fleet.md). It
// accepts a document only when signed by rollout_keys, for this model and
// channel, fresh and not older than the one it holds; it then decides with
// rollout.Decide and queues ordinary install and rollback commands, which the
// worker runs through the normal install path (trusted_keys, anti-downgrade).
type follower struct {
	a    *Agent
	m    *config.Model
	keys verify.Keyring
	path string
	now  func() time.Time
	// active is the version the model serves now (a seam for unit tests).
	active func() string

	mu      sync.Mutex
	st      followState
	held    *rollout.Rollout // verified document of st; nil: none
	refused map[string]bool  // documents already refused and reported, by digest
	pending []*report.Event  // refusal events waiting for the model's lock
	wake    chan struct{}
}

func newFollower(a *Agent, m *config.Model) (*follower, error) {
	keys, err := verify.LoadKeyring(m.RolloutKeys)
	if err != nil {
		return nil, fmt.Errorf("model %s: rollout_keys: %w", m.Name, err)
	}
	f := &follower{a: a, m: m, keys: keys, now: time.Now, refused: map[string]bool{}, wake: make(chan struct{}, 1),
		path: filepath.Join(a.Config.StateDir(m), "rollout.json")}
	f.active = f.activeVersion
	if f.st, err = loadFollowState(f.path); err != nil {
		return nil, err
	}
	if len(f.st.Envelope) > 0 {
		if f.held, err = rollout.Parse(f.st.Envelope, keys); err != nil {
			// Keep Took/Finished: a terminal outcome stays final for that id.
			slog.Warn("agent: the rollout held here no longer verifies (rollout_keys changed?); waiting for a new copy", "model", m.Name, "err", err)
			f.held = nil
		}
	}
	return f, nil
}

func (f *follower) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// offer takes a document from the MQTT topic or the rollout URL. A refused
// document is reported (once) and changes nothing; an error is returned only
// when the accepted one could not be saved, so its source offers it again.
func (f *follower) offer(body []byte, origin string) error {
	if len(body) == 0 {
		return nil // a cleared retained message
	}
	r, err := rollout.Open(body, f.keys, rollout.Expect{Model: f.m.Name, Channel: f.m.RolloutChannel, Now: f.now()})
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = r.CheckNewer(f.held)
	}
	if err != nil {
		f.refuseLocked(digest(body), r, fmt.Errorf("%s: %w", origin, err))
		return nil
	}
	if f.held != nil && f.held.ID == r.ID && f.held.Revision == r.Revision {
		return nil // the copy we hold, seen again
	}
	st := f.st
	if st.ID != r.ID {
		st = followState{ID: r.ID}
	}
	st.Envelope = body
	if err := st.save(f.path); err != nil {
		return err
	}
	f.st, f.held = st, r
	slog.Info("agent: rollout accepted", "model", f.m.Name, "rollout", r.ID, "revision", r.Revision,
		"state", r.State, "stage", r.Stage, "target", r.Target.Version, "from", origin)
	f.kick()
	return nil
}

// refuseLocked queues one event for a refused document; the same document
// seen again (a retained message, every poll) is not reported twice.
func (f *follower) refuseLocked(key string, r *rollout.Rollout, err error) {
	slog.Warn("agent: rollout refused", "model", f.m.Name, "reason", rollout.Reason(err), "err", err)
	if f.refused[key] {
		return
	}
	if len(f.refused) > 1000 {
		clear(f.refused)
	}
	f.refused[key] = true
	ev := &report.Event{Event: report.RolloutEventType, Status: report.StatusRefused,
		FailureReason: rollout.Reason(err), Logs: []string{err.Error()}}
	if r != nil {
		ev.RolloutID, ev.TargetVersion = r.ID, r.Target.Version
	}
	f.pending = append(f.pending, ev)
	f.kick()
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// run acts on the held document until ctx ends: at every new document and at
// least every recheck.
func (f *follower) run(ctx context.Context) {
	for ctx.Err() == nil {
		wait := f.step()
		if f.flush(ctx) > 0 {
			wait = min(wait, time.Second) // the model was busy: try again soon
		}
		sleepCtx(ctx, wait, f.wake)
	}
}

// step decides on the held document and queues what the decision asks for.
// It returns how long the decision holds at most.
func (f *follower) step() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		return recheck
	}
	d, wait := f.verdictLocked()
	switch d.Action {
	case rollout.ActInstall:
		f.queueLocked(ActionInstall, fmt.Sprintf("rollout-%s-install-%d", f.held.ID, f.held.Revision), d)
	case rollout.ActRollback:
		f.queueLocked(ActionRollback, "rollout-"+f.held.ID+"-rollback", d)
	}
	return wait
}

func (f *follower) queueLocked(action, id string, d rollout.Decision) {
	if action == ActionInstall && !f.st.Took {
		f.st.Took = true // saved before the command can run: an abort must know
		if err := f.st.save(f.path); err != nil {
			slog.Error("agent: could not save the rollout state; not starting the install", "model", f.m.Name, "err", err)
			f.st.Took = false
			return
		}
	}
	c := Command{ID: id, Action: action, Model: f.m.Name, Source: f.held.Target.ManifestURL, Rollout: f.held.ID,
		ManifestSHA256: f.held.Target.ManifestSHA256}
	if action != ActionInstall {
		c.Source = ""
	}
	added, err := f.a.Inbox.Add(c)
	if err != nil {
		slog.Error("agent: could not queue a rollout command; trying again later", "id", id, "err", err)
	} else if added {
		slog.Info("agent: rollout command queued", "id", id, "why", d.Why)
	}
}

// verdictLocked is Decide on the held document plus what only the device
// knows: freshness against its clock, deferral and maintenance window.
func (f *follower) verdictLocked() (rollout.Decision, time.Duration) {
	r, now := f.held, f.now()
	if err := r.CheckFresh(now, 0); err != nil {
		f.refuseLocked(fmt.Sprintf("held-%s-%d", r.ID, r.Revision), r, fmt.Errorf("held copy: %w", err))
		return rollout.Decision{Action: rollout.ActHold, Stage: -1, Why: err.Error()}, recheck
	}
	d := r.Decide(rollout.Device{ID: f.a.Config.DeviceID, ActiveVersion: f.active(),
		Took: f.st.Took, Finished: f.st.Finished})
	if d.Action != rollout.ActInstall {
		return d, recheck
	}
	if f.st.Joined.IsZero() {
		f.st.Joined = now.UTC()
		if err := f.st.save(f.path); err != nil {
			slog.Warn("agent: could not save when this device joined the rollout; deferral counts again from the next start", "err", err)
		}
	}
	// Each device defers its own share of rollout_defer, from its id, so a
	// stage's devices do not all start at once.
	share := time.Duration(rollout.Bucket(f.a.Config.DeviceID, r.Salt+"/defer"))
	if start := f.st.Joined.Add(time.Duration(f.m.RolloutDefer) * share / rollout.FullShare); now.Before(start) {
		return rollout.Decision{Action: rollout.ActWait, Stage: d.Stage, Why: "deferred until " + start.Format(time.RFC3339)}, min(start.Sub(now), recheck)
	}
	if open, in := f.m.MaintenanceWindow.Open(now); !open {
		return rollout.Decision{Action: rollout.ActWait, Stage: d.Stage, Why: "outside the maintenance window"}, min(in, recheck)
	}
	return d, recheck
}

func (f *follower) activeVersion() string {
	s, err := slots.OpenView(session.StoreConfig(f.a.Config, f.m))
	if err != nil {
		return ""
	}
	st := s.State()
	if st.Active == "" {
		return ""
	}
	return st.Slots[st.Active].Version
}

// gate lets a queued rollout command run only if its rollout, as held now,
// still asks for it.
func (f *follower) gate(c Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil || f.held.ID != c.Rollout {
		return fmt.Errorf("%w: rollout %s is not the one this device follows now", errGated, c.Rollout)
	}
	want := rollout.ActInstall
	if c.Action == ActionRollback {
		want = rollout.ActRollback
	}
	if d, _ := f.verdictLocked(); d.Action != want {
		return fmt.Errorf("%w: %s", errGated, d.Why)
	}
	return nil
}

// target is the version rollout id installs, "" when it is not the one held.
func (f *follower) target(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil || f.held.ID != id {
		return ""
	}
	return f.held.Target.Version
}

// done records how a rollout install ended. It is final: the device never
// installs that rollout again, whatever later copies of it say.
func (f *follower) done(c Command, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Action != ActionInstall || c.Rollout != f.st.ID {
		return
	}
	f.st.Finished, f.st.Outcome = true, "success"
	if err != nil {
		f.st.Outcome = err.Error()
	}
	if serr := f.st.save(f.path); serr != nil {
		slog.Error("agent: could not save a rollout outcome", "model", f.m.Name, "err", serr)
	}
	f.kick()
}

// flush appends queued refusal events to the model's outbox under the model's
// lock (the lock serialises every writer of an outbox). It returns how many
// are still waiting.
func (f *follower) flush(ctx context.Context) int {
	f.mu.Lock()
	evs := f.pending
	f.mu.Unlock()
	if len(evs) == 0 {
		return 0
	}
	s, err := slots.Open(ctx, session.StoreConfig(f.a.Config, f.m), "agent rollout event")
	if err != nil {
		if !errors.Is(err, slots.ErrBusy) {
			slog.Warn("agent: cannot open the model to report a rollout refusal; trying again", "model", f.m.Name, "err", err)
		}
		return len(evs)
	}
	defer s.Close()
	rep := &report.OutboxReporter{Outbox: f.a.outboxes[f.m.Name], DeviceID: f.a.Config.DeviceID, Model: f.m.Name}
	for _, ev := range evs {
		rep.Report(ctx, ev)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = f.pending[len(evs):]
	return len(f.pending)
}

// onMQTT takes a retained rollout message; it is acknowledged once handled
// (saved, or refused and reported).
func (f *follower) onMQTT(m mqtt.Message) {
	if err := f.offer(m.Payload(), "mqtt "+m.Topic()); err != nil {
		slog.Error("agent: could not save a rollout; not acknowledging it so the broker redelivers", "err", err)
		return
	}
	m.Ack()
}
