package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/durable"
)

// DefaultMaxEvents bounds the outbox. At one update a day, a device offline for
// years stays far below it; what is dropped first when it is reached is said in
// Append.
const DefaultMaxEvents = 50000

// Outbox is a directory of events, one file each, named by sequence number so
// that a directory listing is the delivery order. Each sink keeps a cursor file
// with the last sequence it acknowledged; an event file is removed once every
// sink is past it. Safe for concurrent use within a process; across processes
// (the CLI appends, the agent drains) appends are serialised by the model's
// lock, which every writer of the outbox holds.
type Outbox struct {
	dir       string
	maxEvents int
	sinks     []string // names of the sinks whose cursors gate removal

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every append
}

// OpenOutbox opens (creating) the outbox in dir. sinks names every sink that must
// acknowledge an event before it is removed; with none, events are kept until
// the bound is reached.
func OpenOutbox(dir string, maxEvents int, sinks ...string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	return &Outbox{dir: dir, maxEvents: maxEvents, sinks: sinks, changed: make(chan struct{})}, nil
}

const eventSuffix = ".json"

func (o *Outbox) eventName(seq uint64) string {
	return filepath.Join(o.dir, fmt.Sprintf("%020d%s", seq, eventSuffix))
}

func (o *Outbox) cursorName(sink string) string { return filepath.Join(o.dir, "cursor."+sink) }

// Append assigns the event its sequence number and id (unless it has an id) and
// writes it durably. When the outbox is full, the oldest non-terminal events
// (progress such as downloading or installing) are dropped first: they are
// superseded by the terminal event of the same update, which is never dropped.
func (o *Outbox) Append(ev *Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq, err := o.claimSequence()
	if err != nil {
		return err
	}
	ev.Sequence = seq
	if ev.EventID == "" {
		ev.EventID = newEventID()
	}
	if ev.Event == "" {
		ev.Event = EventType
	}
	if ev.Logs == nil {
		ev.Logs = []string{} // the contract's logs is a list, never null
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now().UTC()
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := durable.WriteFile(o.eventName(seq), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	o.enforceBound(seq)
	close(o.changed)
	o.changed = make(chan struct{})
	return nil
}

// claimSequence saves and returns the next sequence number. It is saved BEFORE
// the event is written: a crash in between leaves a gap in the numbers, which is
// harmless, whereas the other order could hand one number out twice and
// overwrite an undelivered event.
func (o *Outbox) claimSequence() (uint64, error) {
	seq := o.lastSequence() + 1
	if err := durable.WriteFile(filepath.Join(o.dir, seqFile), []byte(strconv.FormatUint(seq, 10)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	return seq, nil
}

const seqFile = "seq"

func (o *Outbox) lastSequence() uint64 {
	b, err := os.ReadFile(filepath.Join(o.dir, seqFile))
	if err == nil {
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	// No counter yet (or lost): continue after anything already in the outbox.
	var top uint64
	if seqs, _ := o.sequences(); len(seqs) > 0 {
		top = seqs[len(seqs)-1]
	}
	for _, s := range o.sinks {
		top = max(top, o.cursor(s))
	}
	return top
}

// enforceBound drops events past maxEvents. Listing the directory costs O(n),
// so it is done only when the number of events not yet acknowledged by every
// sink (an upper bound on the files present) could exceed the bound.
func (o *Outbox) enforceBound(seq uint64) {
	acked := uint64(0)
	if len(o.sinks) > 0 {
		acked = o.cursor(o.sinks[0])
		for _, s := range o.sinks[1:] {
			acked = min(acked, o.cursor(s))
		}
	}
	if seq-min(acked, seq) <= uint64(o.maxEvents) {
		return
	}
	if seqs, err := o.sequences(); err == nil && len(seqs) > o.maxEvents {
		o.shed(seqs, len(seqs)-o.maxEvents)
	}
}

// Changed returns a channel closed at the next Append in this process.
func (o *Outbox) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// shed drops n of the oldest non-terminal events.
func (o *Outbox) shed(seqs []uint64, n int) {
	for _, seq := range seqs {
		if n == 0 {
			return
		}
		ev, err := o.read(seq)
		if err != nil || ev.Terminal() {
			continue
		}
		if os.Remove(o.eventName(seq)) == nil {
			slog.Warn("outbox full: dropped a progress event", "sequence", seq, "status", ev.Status, "max_events", o.maxEvents)
			n--
		}
	}
}

// sequences lists the sequence numbers of the events in the outbox, in order.
func (o *Outbox) sequences() ([]uint64, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), eventSuffix)
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		if seq, err := strconv.ParseUint(name, 10, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

func (o *Outbox) read(seq uint64) (*Event, error) {
	data, err := os.ReadFile(o.eventName(seq))
	if err != nil {
		return nil, err
	}
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("outbox event %d: %w", seq, err)
	}
	return &ev, nil
}

// Pending returns up to limit events that sink has not acknowledged, in order.
// An event file that cannot be read (a torn write from before fsync existed,
// say) is renamed aside and skipped rather than blocking the queue forever.
func (o *Outbox) Pending(sink string, limit int) ([]*Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seqs, err := o.sequences()
	if err != nil {
		return nil, err
	}
	after := o.cursor(sink)
	var out []*Event
	for _, seq := range seqs {
		if seq <= after {
			continue
		}
		ev, err := o.read(seq)
		if err != nil {
			o.setAside(seq, err)
			continue
		}
		if out = append(out, ev); len(out) == limit {
			break
		}
	}
	return out, nil
}

func (o *Outbox) setAside(seq uint64, cause error) {
	name := o.eventName(seq)
	if errors.Is(cause, fs.ErrNotExist) {
		return
	}
	slog.Error("outbox: unreadable event set aside", "file", name, "err", cause)
	os.Rename(name, name+".broken")
}

// Last is the sequence number of the newest event ever appended (0: none):
// with every event delivered, how many this outbox produced. The fleet
// simulator compares it with what the controller recorded (lost events).
func (o *Outbox) Last() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastSequence()
}

// Depth is the number of events sink has not acknowledged.
func (o *Outbox) Depth(sink string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	seqs, _ := o.sequences()
	after := o.cursor(sink)
	return len(seqs) - countUpTo(seqs, after)
}

// countUpTo counts the sequences at or below after.
func countUpTo(seqs []uint64, after uint64) int {
	i, _ := slices.BinarySearch(seqs, after+1)
	return i
}

// Ack records that sink has delivered every event up to seq, and removes the
// events every sink has delivered. A lost cursor update (power cut) only means
// those events are sent again: delivery is at least once, and event_id lets the
// platform drop the duplicates.
func (o *Outbox) Ack(sink string, seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := durable.WriteFile(o.cursorName(sink), []byte(strconv.FormatUint(seq, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("outbox ack: %w", err)
	}
	return o.collect()
}

// collect removes events that every sink has acknowledged.
func (o *Outbox) collect() error {
	if len(o.sinks) == 0 {
		return nil
	}
	done := o.cursor(o.sinks[0])
	for _, s := range o.sinks[1:] {
		done = min(done, o.cursor(s))
	}
	seqs, err := o.sequences()
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq > done {
			break
		}
		if err := os.Remove(o.eventName(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("outbox: %w", err)
		}
	}
	return nil
}

func (o *Outbox) cursor(sink string) uint64 {
	b, err := os.ReadFile(o.cursorName(sink))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}
