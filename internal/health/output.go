package health

import (
	"context"
	"time"
)

// Bounds of the unit output attached to a failure.
const (
	OutputLines   = 20
	outputTimeout = 3 * time.Second
)

// OutputTailer is a Unit that can tell what its processes printed last. It is
// optional: a Unit without it reports failures without lines.
type OutputTailer interface {
	// OutputTail returns up to n of the unit's last output lines, oldest
	// first; nil when they cannot be read (that is no failure of its own).
	OutputTail(ctx context.Context, n int) []string
}

// Failure is a failed verdict (or a failed restore) together with the last
// lines the unit printed, for the failure event's logs. Its text is the
// cause's, which starts with the failure reason, so code that reads the text
// keeps working; Unwrap gives the cause.
type Failure struct {
	Err   error
	Lines []string // the unit's last output lines, oldest first
}

func (f *Failure) Error() string { return f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// LogLines returns Lines; packages that do not import health (update) find
// them through an interface of their own.
func (f *Failure) LogLines() []string { return f.Lines }

// withOutput attaches the unit's last output lines to err. A stop (ctx ended)
// is no verdict and gets none; neither does an error when the unit cannot say.
func (c *Confirmer) withOutput(ctx context.Context, err error) error {
	t, ok := c.Unit.(OutputTailer)
	if err == nil || ctx.Err() != nil || !ok {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, outputTimeout)
	defer cancel()
	if lines := t.OutputTail(octx, OutputLines); len(lines) > 0 {
		return &Failure{Err: err, Lines: lines}
	}
	return err
}
