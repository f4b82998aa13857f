package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Payload types of the envelopes modelslot signs. The type is covered by the
// signature (PAE), so a signed channel pointer can never pass as a manifest.
const (
	PayloadManifest = "application/vnd.modelslot.manifest+json"
	PayloadChannel  = "application/vnd.modelslot.channel+json"
	// PayloadRollout is a fleet rollout document (internal/rollout), signed by a
	// rollout key that is separate from the publisher's key.
	PayloadRollout = "application/vnd.modelslot.rollout+json"
)

// MaxEnvelopeSize bounds an envelope before it is parsed: the largest manifest in
// base64 plus room for signatures.
const MaxEnvelopeSize = MaxManifestSize/3*4 + 64<<10

// maxSignatures bounds the work one envelope can ask for.
const maxSignatures = 16

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse): a payload, its
// type, and signatures over PAE(type, payload).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an envelope.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64 of the 64-byte ed25519 signature
}

// PAE is DSSE's pre-authentication encoding, the bytes actually signed:
// "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in decimal.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Sign wraps payload in an envelope signed by every key in keys and returns its
// JSON encoding.
func Sign(payloadType string, payload []byte, keys ...*PrivateKey) ([]byte, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("sign %s: no signing key", payloadType)
	}
	pae := PAE(payloadType, payload)
	env := Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload)}
	for _, k := range keys {
		sig := ed25519.Sign(k.Key, pae)
		env.Signatures = append(env.Signatures, Signature{KeyID: k.ID, Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", payloadType, err)
	}
	return append(b, '\n'), nil
}

// ParseEnvelope decodes an envelope without checking any signature. Unknown
// fields are refused: an envelope is small and fixed, and anything extra is a
// sign that it is not what it claims.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, rejectf("malformed envelope: %d bytes, more than the %d allowed", len(data), MaxEnvelopeSize)
	}
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, rejectf("malformed envelope: not a DSSE envelope: %v", err)
	}
	if dec.More() {
		return nil, rejectf("malformed envelope: data after its JSON object")
	}
	if env.PayloadType == "" {
		return nil, rejectf("malformed envelope: no payloadType")
	}
	if len(env.Signatures) > maxSignatures {
		return nil, rejectf("malformed envelope: %d signatures, at most %d allowed", len(env.Signatures), maxSignatures)
	}
	return &env, nil
}

// Open checks that data is an envelope of payloadType signed by at least one key
// of trusted, and returns its payload and the id of the key that verified it.
// Signatures by keys outside trusted are skipped (a publisher may sign with
// several keys); a signature that claims a trusted key id but does not verify
// rejects the envelope, since it means the payload was changed after signing.
func Open(data []byte, payloadType string, trusted Keyring) (payload []byte, keyID string, err error) {
	env, err := ParseEnvelope(data)
	if err != nil {
		return nil, "", err
	}
	if env.PayloadType != payloadType {
		return nil, "", rejectf("wrong payload type %q, want %q", env.PayloadType, payloadType)
	}
	payload, err = base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, "", rejectf("malformed envelope: payload is not base64: %v", err)
	}
	if len(env.Signatures) == 0 {
		return nil, "", rejectf("no signature: the %s is unsigned", kindOf(payloadType))
	}
	keyID, err = checkSignatures(env, PAE(env.PayloadType, payload), trusted)
	if err != nil {
		return nil, "", err
	}
	return payload, keyID, nil
}

func checkSignatures(env *Envelope, pae []byte, trusted Keyring) (string, error) {
	var unknown []string
	for _, s := range env.Signatures {
		k, ok := trusted[s.KeyID]
		if !ok {
			unknown = append(unknown, shortID(s.KeyID))
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return "", rejectf("malformed envelope: signature by key %s is not a base64 ed25519 signature", shortID(s.KeyID))
		}
		if !ed25519.Verify(k.Key, pae, sig) {
			return "", rejectf("bad signature by trusted key %s: the %s was changed after signing, or signed by another key under that id",
				shortID(s.KeyID), kindOf(env.PayloadType))
		}
		return s.KeyID, nil
	}
	return "", fmt.Errorf("%w: signed only by %s; trusted keys are %s",
		ErrUntrustedKey, strings.Join(unknown, ", "), strings.Join(shortIDs(trusted.IDs()), ", "))
}

// shortID shortens a key id for messages, as git does for commits; a hostile id
// of any length or content is cut and quoted.
func shortID(id string) string {
	if len(id) > 16 {
		id = id[:16]
	}
	return strconv.Quote(id)
}

func shortIDs(ids []string) []string {
	if len(ids) == 0 {
		return []string{"(none)"}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = shortID(id)
	}
	return out
}

func kindOf(payloadType string) string {
	switch payloadType {
	case PayloadManifest:
		return "manifest"
	case PayloadChannel:
		return "channel pointer"
	case PayloadRollout:
		return "rollout"
	}
	return "payload"
}
