package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// outcome is what the disk must show after a step: the active slot and version.
type outcome struct {
	Slot, Version string
}

func (o outcome) String() string { return o.Version + " in slot " + o.Slot }

// serialLog is what the driver said on the console before the cut.
type serialLog struct {
	Started  bool
	Acked    outcome  // result of the last acknowledged step (or the start state)
	AckedN   int      // its number; 0 is the state found at start
	InFlight *outcome // the step announced after it, which may or may not have happened
	Errors   []string // steps the driver saw fail: always a failure
}

// allowed is every outcome the disk may show: the last acknowledged one, or the
// result of the step that was running when the power went.
func (l *serialLog) allowed() []outcome {
	if l.InFlight != nil {
		return []outcome{l.Acked, *l.InFlight}
	}
	return []outcome{l.Acked}
}

func (l *serialLog) permits(o outcome) bool {
	for _, a := range l.allowed() {
		if a == o {
			return true
		}
	}
	return false
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
		if len(f) < 3 {
			return fmt.Errorf("want START <slot> <version>")
		}
		l.Started, l.Acked = true, outcome{Slot: f[1], Version: f[2]}
	case "BEGIN", "ACK":
		if len(f) < 5 {
			return fmt.Errorf("want %s <n> <op> <version> <slot>", f[0])
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return err
		}
		o := outcome{Slot: f[4], Version: f[3]}
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
