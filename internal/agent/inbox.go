package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
)

// Actions a command may ask for.
const (
	ActionInstall  = "install"
	ActionRollback = "rollback"
	ActionMarkGood = "mark-good"
	ActionMarkBad  = "mark-bad"
)

// Command is an order from the platform (DESIGN.md § Events: commands).
type Command struct {
	ID       string    `json:"id"`
	Action   string    `json:"action"`
	Model    string    `json:"model"`
	Source   string    `json:"source,omitempty"`
	Received time.Time `json:"received,omitzero"`
	// Rollout is set on the commands the rollout follower queues (never taken
	// from the platform): they run only while their rollout still says so.
	Rollout string `json:"rollout,omitempty"`
	// ManifestSHA256 pins the manifest a rollout's install must get (the
	// sha256 of its envelope, from the signed rollout document).
	ManifestSHA256 string `json:"manifest_sha256,omitempty"`
	// Local is set on the installs the channel poller queues (never taken
	// from the platform): nobody waits for their answer, so one that finds
	// nothing to change stays silent.
	Local bool `json:"local,omitempty"`
}

// fromPlatform reports whether the platform sent c (and waits for its answer).
func (c *Command) fromPlatform() bool { return c.Rollout == "" && !c.Local }

// Validate checks the fields a command must have.
func (c *Command) Validate() error {
	switch {
	case c.ID == "" || len(c.ID) > 200:
		return fmt.Errorf("command without a usable id (1-200 characters)")
	case c.Model == "":
		return fmt.Errorf("command %s names no model", c.ID)
	case c.Action == ActionInstall && c.Source == "":
		return fmt.Errorf("install command %s has no source", c.ID)
	case !knownAction(c.Action):
		return fmt.Errorf("command %s: unknown action %q (install, rollback, mark-good, mark-bad)", c.ID, c.Action)
	}
	return nil
}

func knownAction(a string) bool {
	return slices.Contains([]string{ActionInstall, ActionRollback, ActionMarkGood, ActionMarkBad}, a)
}

// dedupeWindow is how many command ids are remembered. It survives restarts, so
// a command the broker redelivers after a crash is recognised.
const dedupeWindow = 10000

// Inbox is the durable queue of accepted commands. A command is written to disk
// before the platform's delivery is acknowledged, runs in arrival order, and a
// repeated id is ignored.
type Inbox struct {
	dir     string
	mu      sync.Mutex
	seen    []string
	changed chan struct{}
}

// OpenInbox opens (creating) the inbox in dir.
func OpenInbox(dir string) (*Inbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open inbox: %w", err)
	}
	in := &Inbox{dir: dir, changed: make(chan struct{})}
	if b, err := os.ReadFile(in.seenFile()); err == nil {
		if err := json.Unmarshal(b, &in.seen); err != nil {
			return nil, fmt.Errorf("inbox %s: %w; move it aside to start a new dedupe window", in.seenFile(), err)
		}
	}
	return in, nil
}

func (in *Inbox) seenFile() string { return filepath.Join(in.dir, "seen.json") }

// Add persists c unless its id was seen before; it reports whether c is new.
func (in *Inbox) Add(c Command) (bool, error) {
	if err := c.Validate(); err != nil {
		return false, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if slices.Contains(in.seen, c.ID) {
		return false, nil
	}
	if c.Received.IsZero() {
		c.Received = time.Now().UTC()
	}
	data, _ := json.Marshal(c)
	seq := in.nextSeq()
	if err := durable.WriteFile(filepath.Join(in.dir, fmt.Sprintf("%020d.json", seq)), data, 0o644); err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	in.seen = append(in.seen, c.ID)
	if len(in.seen) > dedupeWindow {
		in.seen = in.seen[len(in.seen)-dedupeWindow:]
	}
	seen, _ := json.Marshal(in.seen)
	if err := durable.WriteFile(in.seenFile(), seen, 0o644); err != nil {
		return false, fmt.Errorf("inbox: %w", err)
	}
	close(in.changed)
	in.changed = make(chan struct{})
	return true, nil
}

// Changed returns a channel closed at the next Add.
func (in *Inbox) Changed() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.changed
}

// Pending lists the queued commands in order, with their sequence numbers.
func (in *Inbox) Pending() ([]uint64, []Command) {
	in.mu.Lock()
	defer in.mu.Unlock()
	var seqs []uint64
	var cmds []Command
	for _, seq := range in.sequences() {
		b, err := os.ReadFile(filepath.Join(in.dir, fmt.Sprintf("%020d.json", seq)))
		var c Command
		if err != nil || json.Unmarshal(b, &c) != nil {
			continue
		}
		seqs, cmds = append(seqs, seq), append(cmds, c)
	}
	return seqs, cmds
}

// Done removes command seq from the queue.
func (in *Inbox) Done(seq uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	err := os.Remove(filepath.Join(in.dir, fmt.Sprintf("%020d.json", seq)))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("inbox: %w", err)
	}
	return durable.SyncDir(in.dir)
}

func (in *Inbox) sequences() []uint64 {
	entries, _ := os.ReadDir(in.dir)
	var seqs []uint64
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			if seq, err := strconv.ParseUint(name, 10, 64); err == nil {
				seqs = append(seqs, seq)
			}
		}
	}
	slices.Sort(seqs)
	return seqs
}

func (in *Inbox) nextSeq() uint64 {
	seqs := in.sequences()
	if len(seqs) == 0 {
		return uint64(time.Now().UnixNano()) // keeps rising across an empty queue
	}
	return max(seqs[len(seqs)-1]+1, uint64(time.Now().UnixNano()))
}
