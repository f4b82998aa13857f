package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testKey returns a deterministic key so failures are reproducible.
func testKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPAEMatchesDSSESpec(t *testing.T) {
	// The example from the DSSE protocol document.
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

func TestSignOpenRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	env, err := Sign(PayloadManifest, []byte(`{"x":1}`), k)
	if err != nil {
		t.Fatal(err)
	}
	payload, id, err := Open(env, PayloadManifest, NewKeyring(k.Public()))
	if err != nil {
		t.Fatalf("Open of a freshly signed envelope: %v", err)
	}
	if string(payload) != `{"x":1}` || id != k.ID {
		t.Fatalf("Open = %q by %s, want the payload by %s", payload, id, k.ID)
	}
}

func TestOpenSkipsUnknownKeysWhenATrustedOneSigned(t *testing.T) {
	trusted, other := testKey(t, 1), testKey(t, 2)
	env, _ := Sign(PayloadManifest, []byte("p"), other, trusted)
	if _, id, err := Open(env, PayloadManifest, NewKeyring(trusted.Public())); err != nil || id != trusted.ID {
		t.Fatalf("Open = %s, %v; want verified by the trusted key", id, err)
	}
}

// editEnvelope decodes env, lets change edit it, and encodes it again.
func editEnvelope(t *testing.T, env []byte, change func(*Envelope)) []byte {
	t.Helper()
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	change(&e)
	b, _ := json.Marshal(e)
	return b
}

func TestOpenRejects(t *testing.T) {
	k, stranger := testKey(t, 1), testKey(t, 2)
	trusted := NewKeyring(k.Public())
	good, _ := Sign(PayloadManifest, []byte(`{"sequence":1}`), k)
	byStranger, _ := Sign(PayloadManifest, []byte(`{"sequence":1}`), stranger)
	tests := []struct {
		name string
		env  []byte
		want string
	}{
		{"no signature", editEnvelope(t, good, func(e *Envelope) { e.Signatures = nil }), "no signature"},
		{"untrusted key", byStranger, "untrusted key"},
		{"payload edited after signing", editEnvelope(t, good, func(e *Envelope) {
			e.Payload = base64.StdEncoding.EncodeToString([]byte(`{"sequence":9}`))
		}), "bad signature"},
		{"type changed after signing", editEnvelope(t, good, func(e *Envelope) { e.PayloadType = PayloadChannel }), "wrong payload type"},
		{"stranger's signature under a trusted id", editEnvelope(t, byStranger, func(e *Envelope) { e.Signatures[0].KeyID = k.ID }), "bad signature"},
		{"signature not base64", editEnvelope(t, good, func(e *Envelope) { e.Signatures[0].Sig = "!!" }), "malformed"},
		{"payload not base64", editEnvelope(t, good, func(e *Envelope) { e.Payload = "%%%" }), "malformed"},
		{"not JSON", []byte("hello"), "malformed"},
		{"unknown field", []byte(`{"payloadType":"x","payload":"","signatures":[],"extra":1}`), "malformed"},
		{"trailing data", append(append([]byte{}, good...), "{}"...), "malformed"},
		{"oversized", bytes.Repeat([]byte(" "), MaxEnvelopeSize+1), "more than"},
		{"too many signatures", editEnvelope(t, good, func(e *Envelope) {
			for range maxSignatures {
				e.Signatures = append(e.Signatures, e.Signatures[0])
			}
		}), "signatures, at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Open(tt.env, PayloadManifest, trusted)
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want ErrRejected about %q", err, tt.want)
			}
			if untrusted := tt.name == "untrusted key"; errors.Is(err, ErrUntrustedKey) != untrusted {
				t.Fatalf("errors.Is(%v, ErrUntrustedKey) = %v, want %v", err, !untrusted, untrusted)
			}
		})
	}
}

func TestOpenManifestRejectsInvalidManifestEvenWhenSigned(t *testing.T) {
	k := testKey(t, 1)
	env, _ := Sign(PayloadManifest, []byte(`{"schema":1,"model":"demo","version":"v1","files":[{"path":"../x","size":1,"mode":"0644","sha256":"`+digestA+`"}]}`), k)
	if _, err := OpenManifest(env, NewKeyring(k.Public())); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "'..'") {
		t.Fatalf("OpenManifest = %v, want a path rejection", err)
	}
}

func TestSignManifestRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	m := validManifest()
	m.Requires = &Requires{Arch: []string{"arm64"}, MinRuntime: "2.1"}
	env, err := SignManifest(m, k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenManifest(env, NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if !SameContent(m, got) || got.Requires == nil || got.Requires.MinRuntime != "2.1" {
		t.Fatalf("round trip changed the manifest: %+v", got)
	}
}
