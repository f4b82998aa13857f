package rollout

import (
	"net/url"
	"slices"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// maxIDLen bounds a rollout id: it names files, command ids and topics.
const maxIDLen = 64

// Validate checks the document on its own: fields, stage list, state. Every
// error is an ErrInvalid saying what to fix.
func (r *Rollout) Validate() error {
	if r.Schema < 1 || r.Schema > Schema {
		return invalidf("schema %d: this modelslot understands 1 to %d; upgrade modelslot", r.Schema, Schema)
	}
	if err := checkID(r.ID); err != nil {
		return err
	}
	if err := verify.CheckModelName(r.Model); err != nil {
		return invalidf("model: %v", err)
	}
	if err := verify.CheckModelName(r.Channel); err != nil {
		return invalidf("channel: %v", err)
	}
	if err := r.Target.validate(); err != nil {
		return err
	}
	if r.Salt == "" || len(r.Salt) > 128 {
		return invalidf("salt: want 1 to 128 characters")
	}
	if err := validateStages(r.Stages); err != nil {
		return err
	}
	if !slices.Contains([]string{StateRunning, StatePaused, StateHalted, StateAborted, StateCompleted}, r.State) {
		return invalidf("state %q: want running, paused, halted, aborted or completed", r.State)
	}
	if r.Stage < 0 || r.Stage >= len(r.Stages) {
		return invalidf("stage %d: the rollout has stages 0 to %d", r.Stage, len(r.Stages)-1)
	}
	if r.IssuedAt.IsZero() || !r.ExpiresAt.After(r.IssuedAt) {
		return invalidf("issued_at %s, expires_at %s: want both, expiry after issue",
			r.IssuedAt.Format(time.RFC3339), r.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return invalidf("id %q: want 1 to %d characters", id, maxIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return invalidf("id %q: use a-z, 0-9, '-', '_', '.'", id)
		}
	}
	return nil
}

func (t *Target) validate() error {
	if err := verify.CheckVersion(t.Version); err != nil {
		return invalidf("target: %v", err)
	}
	if err := verify.CheckDigest(t.ManifestSHA256); err != nil {
		return invalidf("target manifest_sha256: %v", err)
	}
	u, err := url.Parse(t.ManifestURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("target manifest_url %q: want an http(s) URL of the signed manifest", t.ManifestURL)
	}
	return nil
}

// validateStages: 1 to MaxStages stages, shares strictly growing within
// (0, 100 %], success thresholds within (0, 100 %], and every stage with a
// failure threshold (a stage that can never halt is a mistake, not a policy).
func validateStages(stages []Stage) error {
	if len(stages) == 0 || len(stages) > MaxStages {
		return invalidf("%d stages: want 1 to %d", len(stages), MaxStages)
	}
	var prev uint32
	for i, s := range stages {
		switch {
		case s.Share <= prev || s.Share > FullShare:
			return invalidf("stage %d: share %d bp: shares are cumulative, each larger than the one before and at most %d", i, s.Share, FullShare)
		case s.Success == 0 || s.Success > FullShare:
			return invalidf("stage %d: success threshold %d bp: want 1 to %d", i, s.Success, FullShare)
		case s.MaxFailures < 0 || s.MaxFailureShare > FullShare:
			return invalidf("stage %d: failure threshold (%d, %d bp) out of range", i, s.MaxFailures, s.MaxFailureShare)
		case s.MaxFailures == 0 && s.MaxFailureShare == 0:
			return invalidf("stage %d: no failure threshold: set max_failures or max_failure_bp", i)
		case s.MinSoak < 0:
			return invalidf("stage %d: negative min_soak", i)
		}
		prev = s.Share
	}
	return nil
}
