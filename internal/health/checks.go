// Package health decides whether an activated model version may be kept. This
// file runs the configured check commands; each must exit 0 within its timeout.
// A check that times out is a failure, never a hang.
package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelslot/modelslot/internal/reason"
)

// ReasonCheckFailed is the failure reason of a check command (DESIGN.md § Events).
const ReasonCheckFailed = reason.CheckFailed

// Checks runs shell commands against the newly activated version.
type Checks struct {
	Commands []string
	Timeout  time.Duration // per command
	Env      []string      // extra environment, e.g. MODELSLOT_VERSION=v2
}

// maxOutput bounds what a check may print into a failure reason; checkTail is
// what is kept of its output at all, whatever it prints (memory stays bounded).
const (
	maxOutput = 512
	checkTail = 4 << 10
)

// Run runs every command in order with /bin/sh -c and stops at the first that
// fails. The error text starts with the failure reason.
func (c Checks) Run(ctx context.Context) error {
	for _, command := range c.Commands {
		if err := c.run(ctx, command); err != nil {
			return reason.New(ReasonCheckFailed, "%q: %w", command, err)
		}
	}
	return nil
}

// run runs one command in a process group of its own (runGroup). Its verdict
// is the shell's exit status: a background child that keeps the output pipe
// open does not hold it up, and is killed with the rest of the group.
func (c Checks) run(ctx context.Context, command string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), c.Env...)
	out := newTailBuffer(checkTail)
	err := runGroup(ctx, cmd, out)
	var ee *exec.ExitError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out after %s (its process group was killed); output: %s", c.Timeout, tail(out.Bytes()))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("stopped before it finished: %w", err)
	case errors.As(err, &ee):
		return fmt.Errorf("%s; output: %s", ee.ProcessState, tail(out.Bytes()))
	}
	return err
}

// tail is the end of a check's output for a failure reason, cut at a
// character boundary.
func tail(b []byte) string {
	b = []byte(strings.TrimSpace(string(b)))
	cut := len(b) > maxOutput
	if cut {
		b = b[len(b)-maxOutput:]
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.ToValidUTF8(string(b), "?")
	switch {
	case s == "":
		return "(none)"
	case cut:
		return "…" + s
	}
	return s
}
