package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fetch"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// Exit codes (DESIGN.md § Command line). Scripts rely on them.
const (
	ExitOK         = 0
	ExitError      = 1
	ExitUsage      = 2
	ExitRejected   = 3
	ExitRolledBack = 4
	ExitBusy       = 5
	// A command stopped by a signal exits 128 + the signal's number, as a
	// shell reports it: 130 for SIGINT (Ctrl-C), 143 for SIGTERM.
	ExitSignalBase = 128
)

const exitCodeHelp = `
exit codes:
  0  done, or nothing to do (the same version is already active)
  1  error
  2  usage or config error (also: the configured unit is missing or masked,
     or the program a command needs, such as modelslot-fleet, is not installed)
  3  artifact rejected (signature, a signed document's digest, policy, unsafe path;
     corrupt bytes from the network are a download failure, 1, and retried)
  4  update failed and was rolled back
  5  busy (another operation holds the lock)
  130, 143  stopped by SIGINT or SIGTERM; the next command finishes or undoes what was half done
`

var (
	// ErrUsage marks a usage error (exit 2): UsageErrorf makes one.
	ErrUsage = errors.New("usage error")
	// ErrHelpShown is what a command returns after printing its help (exit 0).
	ErrHelpShown = errors.New("help shown")
)

// UsageErrorf is an error of the command line (exit 2).
func UsageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, args...)...)
}

// signalCause is the cause of the context a signal cancelled.
type signalCause struct{ sig syscall.Signal }

func (s signalCause) Error() string { return "stopped by " + unix.SignalName(s.sig) }

// interruptedError is a command's error when a signal stopped it.
type interruptedError struct {
	sig syscall.Signal
	err error
}

func (e *interruptedError) Error() string { return e.err.Error() }
func (e *interruptedError) Unwrap() error { return e.err }

// interrupted marks err as caused by the signal that cancelled ctx, if one
// did. A command that finished despite the signal (the agent stops cleanly on
// SIGTERM) returns nil and exits 0, which systemd counts as a clean stop.
func interrupted(ctx context.Context, err error) error {
	var sc signalCause
	if err == nil || !errors.As(context.Cause(ctx), &sc) {
		return err
	}
	return &interruptedError{sig: sc.sig, err: err}
}

// exitCode maps an error to the exit code table, in one place.
func exitCode(err error) int {
	var ie *interruptedError
	switch {
	case err == nil, errors.Is(err, ErrHelpShown):
		return ExitOK
	case errors.As(err, &ie):
		return ExitSignalBase + int(ie.sig)
	case errors.Is(err, ErrUsage), errors.Is(err, config.ErrConfig), errors.Is(err, ErrNotInstalled), reason.CodeOf(err, "") == reason.UnitUnavailable:
		return ExitUsage
	case errors.Is(err, verify.ErrRejected), errors.Is(err, fetch.ErrOverBudget):
		return ExitRejected
	case errors.Is(err, update.ErrRolledBack):
		return ExitRolledBack
	case errors.Is(err, slots.ErrBusy):
		return ExitBusy
	}
	return ExitError
}

// hint adds what to do for errors whose cause is the machine, not modelslot.
func hint(err error) string {
	switch {
	case errors.Is(err, fetch.ErrNoSpace):
		return "free space on the state directory's disk, or lower what staging holds; nothing was downloaded"
	case errors.Is(err, fetch.ErrDownload):
		return "the network or the server failed; run the same command again: verified chunks are kept and not fetched twice"
	case errors.Is(err, syscall.ENOSPC):
		return "the disk is full: free space and run the command again; the active version was not touched"
	case errors.Is(err, syscall.EROFS):
		return "the state directory is on a read-only filesystem: remount it read-write, or point state_root elsewhere"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied: run modelslot as the user that owns the state directory (usually root)"
	case errors.Is(err, slots.ErrUnsafe):
		return "something other than modelslot put a link, FIFO or device in the state directory; nothing was followed or changed — see docs/recovery.md"
	case errors.Is(err, slots.ErrCorruptState):
		return "see /usr/share/doc/modelslot/recovery.md (docs/recovery.md in the source)"
	case errors.Is(err, context.Canceled), errors.As(err, new(*interruptedError)):
		return "stopped by a signal; whatever was half done is finished or undone by the next modelslot command"
	}
	return ""
}

// reportError prints err for a person (or as JSON when the command was asked for
// JSON) and returns the exit code.
func reportError(g *Options, err error) int {
	code := exitCode(err)
	if code == ExitOK {
		return code
	}
	h := hint(err)
	if g.JSON {
		b, _ := json.Marshal(struct {
			Error    string `json:"error"`
			Hint     string `json:"hint,omitempty"`
			ExitCode int    `json:"exit_code"`
		}{err.Error(), h, code})
		fmt.Fprintln(g.Stderr, string(b))
		return code
	}
	fmt.Fprintf(g.Stderr, "%s: %v\n", g.prog.Name, err)
	if h != "" {
		fmt.Fprintf(g.Stderr, "  hint: %s\n", h)
	}
	return code
}
