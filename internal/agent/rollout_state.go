package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
)

// followState is what a device keeps of the rollout it follows for one model,
// in <state_root>/<model>/rollout.json (written temp → fsync → rename). The
// signed envelope is kept with it, in one file, so the decision made from a
// document and the document itself can never disagree after a crash; it is
// verified again when read.
type followState struct {
	Envelope []byte `json:"envelope"` // the last accepted document, as signed
	ID       string `json:"id"`       // its rollout id: the fields below are about it
	// Joined is when this device first found itself in an opened stage (the
	// deferral counts from there).
	Joined time.Time `json:"joined,omitzero"`
	// Took: an install of the target was queued under this rollout.
	Took bool `json:"took,omitempty"`
	// Finished: that install ended (success, failure or revert); final.
	Finished bool   `json:"finished,omitempty"`
	Outcome  string `json:"outcome,omitempty"` // the install's error, or "success"
}

func loadFollowState(path string) (followState, error) {
	var st followState
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("rollout state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("rollout state %s is not valid JSON: %w; move it aside and the device follows the next document it sees", path, err)
	}
	return st, nil
}

func (st *followState) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("rollout state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("rollout state: %w", err)
	}
	if err := durable.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("rollout state: %w", err)
	}
	return nil
}
