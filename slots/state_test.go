package slots

import (
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
)

// A state.json written before codes were saved apart gets them from its
// reason texts when it is read.
func TestOldStateGetsItsReasonCodes(t *testing.T) {
	st, err := parseState([]byte(`{"format": 1, "model": "demo", "active": "a", "previous": "b",
 "slots": {"a": {"status": "good", "version": "v1"}, "b": {"status": "bad", "version": "v2", "reason": "manual: rolled back from this version"}},
 "last_failure": {"slot": "b", "version": "v2", "reason": "check_failed: exit 3", "at": "2026-01-01T00:00:00Z"},
 "updated": "2026-01-01T00:00:00Z"}`), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if st.Slots["b"].Code != reason.Manual || st.LastFailure.Code != reason.CheckFailed || st.Slots["a"].Code != "" {
		t.Fatalf("codes: slot b %q, last failure %q, slot a %q", st.Slots["b"].Code, st.LastFailure.Code, st.Slots["a"].Code)
	}
}
