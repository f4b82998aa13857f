package verify

import "fmt"

// SignManifest validates m and returns it in an envelope signed by key: the
// bytes a repository stores as manifests/<version>.json.
func SignManifest(m *Manifest, key *PrivateKey) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("sign manifest %s: %w", m.Version, err)
	}
	payload, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return Sign(PayloadManifest, payload, key)
}

// OpenManifest verifies a signed manifest envelope against trusted and parses
// and validates the manifest inside. Every failure wraps ErrRejected.
func OpenManifest(envelope []byte, trusted Keyring) (*Manifest, error) {
	payload, _, err := Open(envelope, PayloadManifest, trusted)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return ParseManifest(payload)
}
