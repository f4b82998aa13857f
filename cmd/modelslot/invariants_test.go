package main

import (
	"context"
	"path/filepath"

	"github.com/modelslot/modelslot/slots"
)

// checkInvariants asserts what every test defends (DESIGN.md): the link points at
// a complete slot whose files verify (or there is no link and no active slot),
// state.json parses and agrees with the link, and status says the same. It
// returns the active version ("" for none).
func (e *env) checkInvariants() string {
	e.t.Helper()
	// recover finishes what was interrupted, as the agent's next start would;
	// it fails only when the version gone back to does not serve, and then
	// that restore must stay pending for the next try.
	r := e.run(nil, "recover")
	st := e.status()
	if r.code != 0 && (r.code != exitError || st.Restore == nil) {
		e.t.Fatalf("recover: %v; status: %+v", r, st)
	}
	v := e.view()
	state := v.State()
	linked, err := v.LinkedSlot()
	if err != nil {
		e.t.Fatalf("link: %v", err)
	}
	if linked != state.Active {
		e.t.Fatalf("link points at slot %q, state.json says active is %q", linked, state.Active)
	}
	if state.Switch != nil {
		e.t.Fatalf("a link switch is still pending after recovery: %+v", *state.Switch)
	}
	if linked == "" {
		if st.ActiveSlot != nil {
			e.t.Fatalf("no link, but status says slot %s is active", *st.ActiveSlot)
		}
		return ""
	}
	m, err := v.VerifySlot(context.Background(), linked, 2)
	if err != nil {
		e.t.Fatalf("the active slot does not verify: %v", err)
	}
	if st.ActiveSlot == nil || *st.ActiveSlot != linked || *st.ActiveVersion != m.Version {
		e.t.Fatalf("status says active %v %v, the link serves slot %s version %s", st.ActiveSlot, st.ActiveVersion, linked, m.Version)
	}
	if got, _ := filepath.EvalSymlinks(e.link); got != v.SlotDir(linked) {
		e.t.Fatalf("link resolves to %s, want %s", got, v.SlotDir(linked))
	}
	for _, n := range []string{slots.A, slots.B} {
		if s := state.Slots[n]; s.Status == slots.Installing {
			e.t.Fatalf("slot %s is still installing after recovery", n)
		}
	}
	return m.Version
}
