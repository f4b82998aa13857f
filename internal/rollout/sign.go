package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// DefaultSkew is the clock-skew slack a device allows on issued_at and
// expires_at: device clocks drift, and a rollout must not be refused for a
// few minutes of it.
const DefaultSkew = 5 * time.Minute

// MaxSize bounds a rollout envelope before it is parsed; a real one is ~2 KiB.
const MaxSize = 64 << 10

// Sign validates r and returns it in a DSSE envelope signed by key.
func Sign(r *Rollout, key *verify.PrivateKey) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("sign rollout %s: %w", r.ID, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign rollout %s: %w", r.ID, err)
	}
	return verify.Sign(verify.PayloadRollout, append(b, '\n'), key)
}

// Expect is what a device follows at one URL or topic, and its clock.
type Expect struct {
	Model, Channel string
	Now            time.Time
	Skew           time.Duration // 0: DefaultSkew
}

// Parse verifies envelope against keys and decodes and validates the rollout
// inside, without checking what it is for or its freshness (the controller
// reading its own documents back uses it). Every error is an ErrRefused.
func Parse(envelope []byte, keys verify.Keyring) (*Rollout, error) {
	if len(envelope) > MaxSize {
		return nil, invalidf("%d bytes, more than the %d allowed", len(envelope), MaxSize)
	}
	payload, _, err := verify.Open(envelope, verify.PayloadRollout, keys)
	if errors.Is(err, verify.ErrUntrustedKey) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownKey, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var r Rollout
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, invalidf("not a rollout document: %v", err)
	}
	if dec.More() {
		return nil, invalidf("data after the rollout document")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Open is Parse plus the device's checks: the rollout is for the model and
// channel the device follows there, and it is fresh at want.Now.
func Open(envelope []byte, keys verify.Keyring, want Expect) (*Rollout, error) {
	r, err := Parse(envelope, keys)
	if err != nil {
		return nil, err
	}
	if r.Model != want.Model || r.Channel != want.Channel {
		return r, fmt.Errorf("%w: rollout %s is for %s/%s, this device follows %s/%s here",
			ErrWrongTarget, r.ID, r.Model, r.Channel, want.Model, want.Channel)
	}
	return r, r.CheckFresh(want.Now, want.Skew)
}

// CheckFresh refuses a document that expired, or that was issued in the
// future, by more than skew (0: DefaultSkew). An expired document means the
// controller (or the path to it) is gone or a mirror froze an old copy: the
// device starts nothing on it.
func (r *Rollout) CheckFresh(now time.Time, skew time.Duration) error {
	if skew <= 0 {
		skew = DefaultSkew
	}
	if now.After(r.ExpiresAt.Add(skew)) {
		return fmt.Errorf("%w: rollout %s revision %d expired at %s (now %s); the controller must publish a fresh copy",
			ErrStale, r.ID, r.Revision, r.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if r.IssuedAt.After(now.Add(skew)) {
		return fmt.Errorf("%w: rollout %s revision %d is issued at %s, in the future (now %s); check the device's clock",
			ErrStale, r.ID, r.Revision, r.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckNewer refuses r when it is older than held, the copy a device already
// acted on: an earlier revision of the same rollout, or another rollout issued
// before it. Equal documents pass (the same copy seen again).
func (r *Rollout) CheckNewer(held *Rollout) error {
	if held == nil {
		return nil
	}
	if r.ID == held.ID && r.Revision < held.Revision {
		return fmt.Errorf("%w: rollout %s revision %d is older than revision %d held here",
			ErrStale, r.ID, r.Revision, held.Revision)
	}
	if r.ID != held.ID && r.IssuedAt.Before(held.IssuedAt) {
		return fmt.Errorf("%w: rollout %s was issued before rollout %s held here",
			ErrStale, r.ID, held.ID)
	}
	return nil
}
