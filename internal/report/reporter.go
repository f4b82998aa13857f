package report

import (
	"context"
	"log/slog"
)

// OutboxReporter queues the events of one model's updates in its outbox. It
// implements update.Reporter.
type OutboxReporter struct {
	Outbox   *Outbox
	DeviceID string
	Model    string
}

// Report fills in who the event is about and queues it. A failure to queue is
// logged, never returned: reporting must not decide an update.
func (r *OutboxReporter) Report(_ context.Context, ev *Event) {
	ev.DeviceID, ev.Model = r.DeviceID, r.Model
	if err := r.Outbox.Append(ev); err != nil {
		slog.Warn("report: could not queue an event; the update goes on", "status", ev.Status, "err", err)
		return
	}
	slog.Info("update step", "model", ev.Model, "status", ev.Status, "target", ev.TargetVersion, "reason", ev.FailureReason)
}

// Names of the sinks: each is a sink's Name and its cursor in the outbox, so
// an event leaves the outbox once every named sink has sent it.
const (
	SinkMQTT = "mqtt"
	SinkHTTP = "http"
)

// SinkNames lists the cursors that gate removal from the outbox, for the sinks a
// platform configuration turns on.
func SinkNames(mqttURL, httpURL string) []string {
	var names []string
	if mqttURL != "" {
		names = append(names, SinkMQTT)
	}
	if httpURL != "" {
		names = append(names, SinkHTTP)
	}
	return names
}
