package simulate

import (
	"context"
	"testing"

	"github.com/modelslot/modelslot/internal/reason"
)

// The probe stand-in fails exactly the chosen version, with the reason a real
// probe that got the wrong answer gives, and counts what it was asked.
func TestProbeFailsOnlyTheChosenVersion(t *testing.T) {
	p := &Probe{Fail: "v3"}
	ctx := context.Background()
	if err := p.Confirm(ctx, "a", "v2"); err != nil {
		t.Fatalf("v2: %v", err)
	}
	err := p.Confirm(ctx, "b", "v3")
	if reason.CodeOf(err, "") != reason.ProbeMismatch {
		t.Fatalf("v3: got %v, want a %s failure", err, reason.ProbeMismatch)
	}
	p.Confirm(ctx, "b", "v3")
	if p.Confirmations("v2") != 1 || p.Confirmations("v3") != 2 || p.Confirmations("v1") != 0 {
		t.Fatalf("confirmations v1 %d v2 %d v3 %d; want 0 1 2", p.Confirmations("v1"), p.Confirmations("v2"), p.Confirmations("v3"))
	}
	if err := (&Probe{}).Confirm(ctx, "a", "v3"); err != nil {
		t.Fatalf("a probe with no version to fail failed v3: %v", err)
	}
}
