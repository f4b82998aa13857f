package rollout

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

// FuzzOpen feeds arbitrary bytes to the device's whole path for a rollout
// document. Whatever the input: no panic, every error is a refusal with a
// reason code, and an accepted document is valid and survives a round trip.
func FuzzOpen(f *testing.F) {
	k := testKey(f, 42)
	good, _ := Sign(validRollout(), k)
	f.Add(good)
	halted := validRollout()
	halted.State, halted.Stage, halted.Reason = StateHalted, 1, "2 devices failed"
	env, _ := Sign(halted, k)
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.modelslot.rollout+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{}`))
	keys := verify.NewKeyring(k.Public())
	want := Expect{Model: "demo", Channel: "stable", Now: t0}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(data, keys, want)
		if err != nil {
			if !errors.Is(err, ErrRefused) || Reason(err) == "" {
				t.Fatalf("error is not a refusal with a reason: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted rollout does not validate: %v", err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Rollout
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("round trip does not validate: %v", err)
		}
		r.Decide(Device{ID: "edge-001", ActiveVersion: "v1"}) // must not panic on any accepted document
	})
}
