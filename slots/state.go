package slots

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// StateFormat is the version of state.json's layout.
const StateFormat = 1

// Slot names. There are exactly two.
const (
	A = "a"
	B = "b"
)

// Status of a slot.
type Status string

const (
	Empty      Status = "empty"      // nothing installed
	Installing Status = "installing" // being filled; never the target of the link
	Installed  Status = "installed"  // complete and verified, never activated
	OnTrial    Status = "trial"      // activated, not yet confirmed
	Good       Status = "good"       // confirmed; a rollback target
	Bad        Status = "bad"        // failed its trial or was rolled back from; see Reason
)

// Operations that move the link; recorded in Switch.Op.
const (
	OpActivate = "activate"
	OpRevert   = "revert"
	OpRollback = "rollback"
)

// State is the content of state.json.
type State struct {
	Format      int                   `json:"format"`
	Model       string                `json:"model"`
	Active      string                `json:"active,omitempty"`   // slot the link points at
	Previous    string                `json:"previous,omitempty"` // slot served before Active
	Slots       map[string]*SlotState `json:"slots"`
	Trial       *Trial                `json:"trial,omitempty"`
	Switch      *Switch               `json:"switch,omitempty"` // a link change that may not have happened yet
	LastFailure *Failure              `json:"last_failure,omitempty"`
	// Restore is a version the link was moved back to that the unit does not
	// serve yet: saved with the switch, cleared once the version answers.
	Restore *Restore  `json:"restore,omitempty"`
	Updated time.Time `json:"updated"`
}

// Restore is a version that a revert or rollback put the link back to, and
// that must still be brought into service (the unit restarted or reloaded on
// it and the probe answered). It is persisted with the switch, so a restore
// that fails, or that a crash or power cut interrupts, is tried again by the
// agent, by `modelslot recover` and by the next command that changes state,
// until the version answers.
type Restore struct {
	Slot    string `json:"slot"`
	Version string `json:"version"`
	// Op is the switch that owes the restore (revert or rollback); From the
	// version it left and Reason why, for the events that report the outcome.
	Op       string      `json:"op"`
	From     string      `json:"from,omitempty"`
	Code     reason.Code `json:"code,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	Since    time.Time   `json:"since"`
	Attempts int         `json:"attempts,omitempty"` // failed tries so far
	// LastError is why the last try failed, for status and events.
	LastError string `json:"last_error,omitempty"`
}

// SlotState describes one slot.
type SlotState struct {
	Status         Status      `json:"status"`
	Version        string      `json:"version,omitempty"`
	Sequence       uint64      `json:"sequence,omitempty"`
	ManifestSHA256 string      `json:"manifest_sha256,omitempty"`
	InstalledAt    time.Time   `json:"installed_at,omitzero"`
	Code           reason.Code `json:"code,omitempty"`   // why it is bad, as a code of the contract
	Reason         string      `json:"reason,omitempty"` // why it is bad, for a person ("code: detail")
}

// Trial is an activation that has not been confirmed yet.
type Trial struct {
	Slot     string    `json:"slot"`
	Version  string    `json:"version"`
	From     string    `json:"from,omitempty"` // slot to go back to; empty on a first install
	Started  time.Time `json:"started"`
	Attempts int       `json:"attempts"` // times the confirmation was (re)started
}

// Switch is the intent to point the link at To. It is persisted before the link
// moves and cleared after, so recovery finishes a half-done switch.
type Switch struct {
	Op     string `json:"op"`
	To     string `json:"to"`             // empty: remove the link (revert of a first install)
	From   string `json:"from,omitempty"` // the slot the link pointed at before
	Reason string `json:"reason,omitempty"`
}

// Failure is the last update that did not succeed, for status and events.
type Failure struct {
	Slot    string      `json:"slot"`
	Version string      `json:"version"`
	Code    reason.Code `json:"code,omitempty"`
	Reason  string      `json:"reason"`
	At      time.Time   `json:"at"`
	// RestoreFailed says the version reverted to did not come back healthy
	// either; the device needs a person.
	RestoreFailed string `json:"restore_failed,omitempty"`
}

// ErrCorruptState means state.json exists but cannot be trusted. modelslot never
// resets it by itself: the operator decides (docs/recovery.md).
var ErrCorruptState = errors.New("state.json cannot be used")

func newState(model string) *State {
	return &State{
		Format: StateFormat,
		Model:  model,
		Slots:  map[string]*SlotState{A: {Status: Empty}, B: {Status: Empty}},
	}
}

// Other returns the slot that is not s.
func Other(s string) string {
	if s == A {
		return B
	}
	return A
}

// parseState decodes state.json strictly: a file that is truncated, has unknown
// fields or breaks an invariant is refused, with the line of a syntax error.
// migrateCodes fills the codes of a state written before they were saved
// apart (the reason text then began with its code): the one place a code is
// read from text, and only from files of that older format.
func (st *State) migrateCodes() {
	code := func(text string) reason.Code {
		c, _, _ := strings.Cut(text, ":")
		return reason.Code(c)
	}
	for _, s := range st.Slots {
		if s != nil && s.Code == "" && s.Reason != "" {
			s.Code = code(s.Reason)
		}
	}
	if f := st.LastFailure; f != nil && f.Code == "" {
		f.Code = code(f.Reason)
	}
	if r := st.Restore; r != nil && r.Code == "" && r.Reason != "" {
		r.Code = code(r.Reason)
	}
}

func parseState(data []byte, model string) (*State, error) {
	var st State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON (%s)", ErrCorruptState, describeJSONError(data, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrCorruptState)
	}
	if err := st.check(model); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	st.migrateCodes()
	return &st, nil
}

func describeJSONError(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
		return fmt.Sprintf("line %d: %v", line, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated or empty"
	}
	return err.Error()
}

func (st *State) check(model string) error {
	if st.Format != StateFormat {
		return fmt.Errorf("format %d, this modelslot reads format %d", st.Format, StateFormat)
	}
	if st.Model != model {
		return fmt.Errorf("it belongs to model %q, not %q", st.Model, model)
	}
	if len(st.Slots) != 2 || st.Slots[A] == nil || st.Slots[B] == nil {
		return fmt.Errorf("slots must be exactly %q and %q", A, B)
	}
	for name, s := range st.Slots {
		if !validStatus(s.Status) {
			return fmt.Errorf("slot %s has unknown status %q", name, s.Status)
		}
	}
	for _, ref := range []string{st.Active, st.Previous} {
		if ref != "" && ref != A && ref != B {
			return fmt.Errorf("unknown slot %q", ref)
		}
	}
	if st.Trial != nil && st.Trial.Slot != A && st.Trial.Slot != B {
		return fmt.Errorf("trial names unknown slot %q", st.Trial.Slot)
	}
	if r := st.Restore; r != nil && r.Slot != A && r.Slot != B {
		return fmt.Errorf("pending restore names unknown slot %q", r.Slot)
	}
	if sw := st.Switch; sw != nil && ((sw.To != "" && sw.To != A && sw.To != B) || !validOp(sw.Op)) {
		return fmt.Errorf("pending switch %+v is not valid", *sw)
	}
	return nil
}

func validStatus(s Status) bool {
	switch s {
	case Empty, Installing, Installed, OnTrial, Good, Bad:
		return true
	}
	return false
}

func validOp(op string) bool { return op == OpActivate || op == OpRevert || op == OpRollback }

func (st *State) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '\n'), nil
}

// clone returns a deep copy, so callers can look without racing the store.
func (st *State) clone() *State {
	c := *st
	c.Slots = map[string]*SlotState{}
	for k, v := range st.Slots {
		s := *v
		c.Slots[k] = &s
	}
	if st.Trial != nil {
		t := *st.Trial
		c.Trial = &t
	}
	if st.Switch != nil {
		s := *st.Switch
		c.Switch = &s
	}
	if st.LastFailure != nil {
		f := *st.LastFailure
		c.LastFailure = &f
	}
	if st.Restore != nil {
		r := *st.Restore
		c.Restore = &r
	}
	return &c
}
