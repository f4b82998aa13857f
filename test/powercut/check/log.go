package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// outcome is what the disk must show after a step: the active slot, its
// version and when that copy was installed (which tells two installs of one
// version into one slot apart).
type outcome struct {
	Slot, Version string
	Installed     string // RFC 3339; "new" in a BEGIN: a copy made by that step
}

func (o outcome) String() string {
	return o.Version + " in slot " + o.Slot + " (installed " + o.Installed + ")"
}

// serialLog is what the driver said on the console before the cut.
type serialLog struct {
	Started  bool
	Acked    outcome   // result of the last acknowledged step (or the start state)
	AckedN   int       // its number; 0 is the state found at start
	InFlight *outcome  // the step announced after it, which may or may not have happened
	Errors   []string  // steps the driver saw fail: always a failure
	latest   time.Time // the newest installed_at the console mentioned
}

// permits says whether the disk may show o: the result of the last
// acknowledged step, or of the step that was running when the power went.
func (l *serialLog) permits(o outcome) bool {
	if o == l.Acked {
		return true
	}
	f := l.InFlight
	if f == nil || f.Slot != o.Slot || f.Version != o.Version {
		return false
	}
	if f.Installed != "new" {
		return f.Installed == o.Installed
	}
	// A copy made by the step in flight is newer than every copy before it.
	t, err := time.Parse(time.RFC3339Nano, o.Installed)
	return err == nil && t.After(l.latest)
}

// parseLog reads the driver's lines (test/powercut/driver) out of the console
// log, ignoring kernel messages. A last line without its newline was cut in the
// middle and is ignored: an acknowledgement that did not fully reach the host
// was not given.
func parseLog(r io.Reader) (*serialLog, error) {
	l := &serialLog{}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return l, nil
		}
		if err != nil {
			return nil, err
		}
		if err := l.add(strings.Fields(strings.TrimRight(line, "\r\n"))); err != nil {
			return nil, fmt.Errorf("console line %q: %w", strings.TrimSpace(line), err)
		}
	}
}

func (l *serialLog) add(f []string) error {
	if len(f) == 0 {
		return nil
	}
	switch f[0] {
	case "START":
		if len(f) < 4 {
			return fmt.Errorf("want START <slot> <version> <installed>")
		}
		l.Started, l.Acked = true, outcome{Slot: f[1], Version: f[2], Installed: f[3]}
		l.seen(f[3])
	case "BEGIN", "ACK":
		if len(f) < 6 {
			return fmt.Errorf("want %s <n> <op> <version> <slot> <installed>", f[0])
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return err
		}
		o := outcome{Slot: f[4], Version: f[3], Installed: f[5]}
		l.seen(f[5])
		if f[0] == "BEGIN" {
			l.InFlight = &o
			return nil
		}
		l.Acked, l.AckedN, l.InFlight = o, n, nil
	case "ERROR":
		l.Errors = append(l.Errors, strings.Join(f[1:], " "))
	}
	return nil
}

func (l *serialLog) seen(installed string) {
	if t, err := time.Parse(time.RFC3339Nano, installed); err == nil && t.After(l.latest) {
		l.latest = t
	}
}
