package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Channel is the signed pointer stored as <model>/channels/<channel>.json: which
// manifest is the newest of a channel. It names the manifest's sha256 (of the
// envelope bytes), so a mirror cannot pair a channel with another manifest, and
// the manifest's version and sequence, which must agree with the manifest.
type Channel struct {
	Schema         int       `json:"schema"`
	Model          string    `json:"model"`
	Channel        string    `json:"channel"`
	Version        string    `json:"version"`
	Sequence       uint64    `json:"sequence"`
	Manifest       string    `json:"manifest"` // path relative to <repo>/<model>/, e.g. manifests/v2.json
	ManifestSHA256 string    `json:"manifest_sha256"`
	Created        time.Time `json:"created,omitzero"`
}

// MaxChannelEnvelope bounds a signed channel pointer as it is downloaded (the
// envelope; its payload is smaller still): a real one is about 1 KiB. The one
// limit for a channel document, wherever it is read.
const MaxChannelEnvelope = 64 << 10

// Validate checks the pointer's fields.
func (c *Channel) Validate() error {
	if c.Schema < 1 || c.Schema > ChannelSchema {
		return rejectf("channel schema %d: this modelslot understands 1 to %d; upgrade modelslot", c.Schema, ChannelSchema)
	}
	if err := CheckModelName(c.Model); err != nil {
		return err
	}
	if err := CheckModelName(c.Channel); err != nil {
		return fmt.Errorf("channel name: %w", err)
	}
	if err := CheckVersion(c.Version); err != nil {
		return err
	}
	if want := ManifestPath(c.Version); c.Manifest != want {
		return rejectf("channel points at %q, want %q for version %s", c.Manifest, want, c.Version)
	}
	return CheckDigest(c.ManifestSHA256)
}

// SignChannel validates c and returns it in an envelope signed by key.
func SignChannel(c *Channel, key *PrivateKey) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sign channel %s: %w", c.Channel, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign channel %s: %w", c.Channel, err)
	}
	return Sign(PayloadChannel, append(b, '\n'), key)
}

// OpenChannel verifies a signed channel pointer against trusted and returns it.
func OpenChannel(envelope []byte, trusted Keyring) (*Channel, error) {
	payload, _, err := Open(envelope, PayloadChannel, trusted)
	if err != nil {
		return nil, fmt.Errorf("channel: %w", err)
	}
	if len(payload) > MaxChannelEnvelope {
		return nil, rejectf("channel: payload is %d bytes, more than %d", len(payload), MaxChannelEnvelope)
	}
	var c Channel
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return nil, rejectf("channel: not valid JSON: %v", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("channel: %w", err)
	}
	return &c, nil
}

// CheckManifest reports whether m is the manifest c points at: same model,
// version and sequence. (The envelope digest is checked by whoever fetched it.)
func (c *Channel) CheckManifest(m *Manifest) error {
	if m.Model != c.Model || m.Version != c.Version || m.Sequence != c.Sequence {
		return rejectf("channel %s points at %s %s (sequence %d) but the manifest is %s %s (sequence %d)",
			c.Channel, c.Model, c.Version, c.Sequence, m.Model, m.Version, m.Sequence)
	}
	return nil
}
