// Package health decides whether an activated model version may be kept. This
// file runs the configured check commands; each must exit 0 within its timeout.
// A check that times out is a failure, never a hang.
package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ReasonCheckFailed is the failure reason of a check command (DESIGN.md § Events).
const ReasonCheckFailed = "check_failed"

// Checks runs shell commands against the newly activated version.
type Checks struct {
	Commands []string
	Timeout  time.Duration // per command
	Env      []string      // extra environment, e.g. MODELSLOT_VERSION=v2
}

// maxOutput bounds what a check may print into a failure reason.
const maxOutput = 512

// Run runs every command in order with /bin/sh -c and stops at the first that
// fails. The error text starts with the failure reason.
func (c Checks) Run(ctx context.Context) error {
	for _, command := range c.Commands {
		if err := c.run(ctx, command); err != nil {
			return fmt.Errorf("%s: %q: %w", ReasonCheckFailed, command, err)
		}
	}
	return nil
}

func (c Checks) run(ctx context.Context, command string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), c.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a check's children must not keep us waiting on its pipes
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s", c.Timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s; output: %s", ee.ProcessState, tail(out.String()))
	}
	return err
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxOutput {
		s = "…" + s[len(s)-maxOutput:]
	}
	if s == "" {
		return "(none)"
	}
	return s
}
