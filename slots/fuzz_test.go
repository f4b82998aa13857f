package slots

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseState feeds arbitrary bytes to the state.json parser, as a disk
// that lost sectors or a person's editor might: no panic, every refusal is an
// ErrCorruptState, and what is accepted writes back to a file that parses to
// the same state (so a save never turns a readable state into an unreadable one).
func FuzzParseState(f *testing.F) {
	st := newState("demo")
	good, err := st.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format": 1, "model": "demo", "active": "a", "previous": "b",
 "slots": {"a": {"status": "good", "version": "v1", "sequence": 3}, "b": {"status": "bad", "version": "v2", "reason": "manual: rolled back"}},
 "trial": {"slot": "a", "version": "v1", "started": "2026-01-01T00:00:00Z", "attempts": 1},
 "switch": {"op": "revert", "to": "b", "from": "a"},
 "last_failure": {"slot": "b", "version": "v2", "reason": "check_failed: exit 3", "at": "2026-01-01T00:00:00Z"},
 "restore": {"slot": "b", "version": "v2", "op": "revert", "since": "2026-01-01T00:00:00Z"},
 "updated": "2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format": 1, "model": "demo", "slots": {"a": null, "b": {}}}`))
	f.Add([]byte("{\n\"format\": 1,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data, "demo")
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("refusal %v is not an ErrCorruptState", err)
			}
			return
		}
		again, err := st.marshal()
		if err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		st2, err := parseState(again, "demo")
		if err != nil {
			t.Fatalf("accepted state written back does not parse: %v\n%s", err, again)
		}
		third, _ := st2.marshal()
		if !bytes.Equal(again, third) {
			t.Fatalf("state changes on a round trip:\n%s\n%s", again, third)
		}
	})
}
