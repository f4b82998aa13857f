package update

import (
	"errors"

	"github.com/modelslot/modelslot/internal/report"
)

// logCarrier is a confirmation error that carries log lines, such as the
// unit's last output (health.Failure); declared here, where it is used.
type logCarrier interface{ LogLines() []string }

// logLines returns the log lines err carries, if any.
func logLines(err error) []string {
	var c logCarrier
	if errors.As(err, &c) {
		return c.LogLines()
	}
	return nil
}

// withLogs appends lines to an event's logs, after the reason.
func withLogs(lines []string) func(*report.Event) {
	return func(ev *report.Event) { ev.Logs = append(ev.Logs, lines...) }
}
