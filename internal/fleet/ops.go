package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/verify"
)

// Errors of the operations, mapped to HTTP statuses by the API.
var (
	// ErrInvalid: the request itself is wrong (400).
	ErrInvalid = errors.New("invalid request")
	// ErrState: the rollout is not in a state that allows this (409).
	ErrState = errors.New("not allowed in the rollout's state")
)

// UserAgent is sent with the controller's own requests (the target manifest),
// so a repository's logs tell them from devices' downloads.
const UserAgent = "modelslot-fleet-controller"

// CreateRequest asks for a new rollout of the manifest at ManifestURL.
type CreateRequest struct {
	ID            string          `json:"id,omitempty"` // default: <model>-<version>-<random>
	Model         string          `json:"model"`
	Channel       string          `json:"channel"`
	ManifestURL   string          `json:"manifest_url"`
	Stages        []rollout.Stage `json:"stages"`
	AbortRollback bool            `json:"abort_rollback"`
	// Salt, when set, fixes the cohorts (to repeat a rollout's cohorts, or in
	// tests); default: random, so the same devices are not always first.
	Salt string `json:"salt,omitempty"`
}

// Create starts a rollout at its first stage. The target is read from the
// manifest itself (version, sequence, the digest of its envelope); the
// controller does not check its signature — devices do, against their own
// trusted_keys, which is the point of the separate rollout key.
func (c *Controller) Create(ctx context.Context, req CreateRequest) (*store.Rollout, error) {
	target, err := c.target(ctx, req.ManifestURL, req.Model)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, err := c.DB.Rollouts(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Doc.Model == req.Model && r.Doc.Channel == req.Channel && !rollout.Final(r.Doc.State) {
			return nil, fmt.Errorf("%w: rollout %s of %s/%s is %s; abort it first", ErrState, r.Doc.ID, req.Model, req.Channel, r.Doc.State)
		}
	}
	now := c.now()
	if req.ID == "" {
		req.ID = fmt.Sprintf("%s-%s-%s", req.Model, target.Version, randomHex(3))
	}
	if req.Salt == "" {
		req.Salt = randomHex(16)
	}
	doc := rollout.Rollout{Schema: rollout.Schema, ID: req.ID, Revision: 1, Model: req.Model, Channel: req.Channel,
		Target: target, Salt: req.Salt, Stages: req.Stages, State: rollout.StateRunning, AbortRollback: req.AbortRollback,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(c.Fleet.DocumentTTL))}
	env, err := rollout.Sign(&doc, c.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r := &store.Rollout{Doc: doc, Envelope: env, StageOpened: now, Created: now, Updated: now}
	if err := c.DB.CreateRollout(ctx, r); err != nil {
		return nil, err
	}
	c.wake()
	return r, nil
}

func (c *Controller) target(ctx context.Context, url, model string) (rollout.Target, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return rollout.Target{}, fmt.Errorf("%w: manifest_url %q: %w", ErrInvalid, url, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return rollout.Target{}, fmt.Errorf("%w: fetch the target manifest: %w", ErrInvalid, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rollout.Target{}, fmt.Errorf("%w: fetch the target manifest %s: %s", ErrInvalid, url, resp.Status)
	}
	env, err := io.ReadAll(io.LimitReader(resp.Body, verify.MaxEnvelopeSize+1))
	if err != nil {
		return rollout.Target{}, fmt.Errorf("%w: fetch the target manifest: %w", ErrInvalid, err)
	}
	m, err := parseUnverified(env)
	if err != nil {
		return rollout.Target{}, fmt.Errorf("%w: %s is not a manifest envelope: %w", ErrInvalid, url, err)
	}
	if m.Model != model {
		return rollout.Target{}, fmt.Errorf("%w: %s is a manifest of model %q, not %q", ErrInvalid, url, m.Model, model)
	}
	sum := sha256.Sum256(env)
	return rollout.Target{Version: m.Version, Sequence: m.Sequence, ManifestURL: url, ManifestSHA256: hex.EncodeToString(sum[:])}, nil
}

func parseUnverified(env []byte) (*verify.Manifest, error) {
	e, err := verify.ParseEnvelope(env)
	if err != nil {
		return nil, err
	}
	if e.PayloadType != verify.PayloadManifest {
		return nil, fmt.Errorf("payload type %q", e.PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, err
	}
	return verify.ParseManifest(payload)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Operations a person may ask of a rollout, by name as the API spells them.
const (
	OpPause  = "pause"
	OpResume = "resume"
	OpAbort  = "abort"
)

// operation is what one operation needs and does.
type operation struct {
	verb string   // for the default reason: "paused by a person"
	from []string // the states it is allowed in
	to   string
}

// operations is the one table of what a person may do to a rollout in which
// state: the API refuses the rest (409), and the dashboard offers nothing
// else (Actions). A halted rollout is not resumed: its failures would halt it
// again at once; abort it and start a new one once the cause is fixed.
var operations = map[string]operation{
	OpPause:  {"paused", []string{rollout.StateRunning}, rollout.StatePaused},
	OpResume: {"resumed", []string{rollout.StatePaused}, rollout.StateRunning},
	OpAbort:  {"aborted", []string{rollout.StateRunning, rollout.StatePaused, rollout.StateHalted}, rollout.StateAborted},
}

// Actions lists the operations a rollout in state allows, in a fixed order
// (pause, resume, abort): what the dashboard may offer.
func Actions(state string) []string {
	out := []string{} // JSON [] for a final rollout, not null
	for _, op := range []string{OpPause, OpResume, OpAbort} {
		if slices.Contains(operations[op].from, state) {
			out = append(out, op)
		}
	}
	return out
}

// Pause stops new starts of a running rollout; Resume goes on from where it
// was paused. Abort ends a rollout for good; by its abort_rollback policy the
// devices that took it roll back.
func (c *Controller) Pause(ctx context.Context, id, reason string) (*store.Rollout, error) {
	return c.change(ctx, id, reason, OpPause)
}

// Resume: see Pause.
func (c *Controller) Resume(ctx context.Context, id, reason string) (*store.Rollout, error) {
	return c.change(ctx, id, reason, OpResume)
}

// Abort: see Pause.
func (c *Controller) Abort(ctx context.Context, id, reason string) (*store.Rollout, error) {
	return c.change(ctx, id, reason, OpAbort)
}

func (c *Controller) change(ctx context.Context, id, reason, name string) (*store.Rollout, error) {
	op := operations[name]
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.DB.GetRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(op.from, r.Doc.State) {
		return nil, fmt.Errorf("%w: rollout %s is %s; %s needs %v", ErrState, id, r.Doc.State, name, op.from)
	}
	if reason == "" {
		reason = op.verb + " by a person"
	}
	if err := c.transition(ctx, r, reason, func(n *store.Rollout, _ time.Time) { n.Doc.State = op.to }); err != nil {
		return nil, err
	}
	c.wake()
	return r, nil
}

// Status is everything the controller knows of one rollout.
type Status struct {
	Rollout     rollout.Rollout `json:"rollout"`
	Actions     []string        `json:"actions"` // what the state allows: pause, resume, abort
	StageOpened time.Time       `json:"stage_opened"`
	Cohort      int             `json:"cohort"`
	Succeeded   int             `json:"succeeded"`
	Failed      int             `json:"failed"`
	Failures    map[string]int  `json:"failures"`
	Stages      []StageCount    `json:"stages"` // devices of each stage by result
	Refusals    map[string]int  `json:"refusals"`
	Events      int             `json:"events"` // device events recorded under this rollout
	Outcomes    []store.Outcome `json:"outcomes"`
	History     []store.History `json:"history"`
}

// Status reports one rollout.
func (c *Controller) Status(ctx context.Context, id string) (*Status, error) {
	r, err := c.DB.GetRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := c.tally(ctx, r)
	if err != nil {
		return nil, err
	}
	s := &Status{Rollout: r.Doc, Actions: Actions(r.Doc.State), StageOpened: r.StageOpened, Cohort: t.Cohort, Succeeded: t.Succeeded, Failed: t.Failed, Failures: t.Failures, Stages: t.Stages}
	if s.Outcomes, err = c.DB.Outcomes(ctx, id); err != nil {
		return nil, err
	}
	if s.History, err = c.DB.RolloutHistory(ctx, id); err != nil {
		return nil, err
	}
	if s.Refusals, err = c.DB.Refusals(ctx, id); err != nil {
		return nil, err
	}
	if s.Events, err = c.DB.EventCount(ctx, id); err != nil {
		return nil, err
	}
	return s, nil
}
