// Package report tells the remote platform what happened on the device. Every
// event is written to a durable outbox (fsynced) before anything tries to send
// it and is removed only once every configured sink has acknowledged it, so
// events survive crashes and hours offline and arrive in order, at least once.
// Reporting never decides an update: a sink that cannot be reached only delays
// events.
package report

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// EventType is the `event` field of every status event.
const EventType = "model_update_status"

// RolloutEventType is the `event` field of a device's verdict on a rollout
// document (docs/fleet.md): Status is StatusRefused, FailureReason the
// refusal's reason code, Logs[0] the reason in words.
const RolloutEventType = "rollout_status"

// StatusRefused: the device refused a rollout document; nothing changed.
const StatusRefused = "refused"

// Statuses of an update (DESIGN.md § Events).
const (
	StatusDownloading = "downloading"
	StatusInstalling  = "installing"
	StatusActivating  = "activating"
	StatusConfirming  = "confirming"
	StatusSuccess     = "success"
	StatusFailed      = "failed"
	StatusRollingBack = "rolling_back"
	StatusRolledBack  = "rolled_back"
	// StatusRejected answers a platform command the device refused before
	// running it (FailureReason "invalid_command", Logs[0] why): final, never
	// retried, nothing changed.
	StatusRejected = "rejected"
	// StatusNothingToDo answers a command that ran and found nothing to
	// change (the version asked for is already active, no trial to end).
	StatusNothingToDo = "nothing_to_do"
)

// Event is one status report. Field order is the contract's: the seed's fields
// first, then event_id, model and sequence.
type Event struct {
	Event             string     `json:"event"`
	DeviceID          string     `json:"device_id"`
	Timestamp         time.Time  `json:"timestamp"`
	Status            string     `json:"status"`
	CurrentVersion    string     `json:"current_version"`
	TargetVersion     string     `json:"target_version"`
	FailureReason     string     `json:"failure_reason"`
	RollbackTimestamp *time.Time `json:"rollback_timestamp"`
	Logs              []string   `json:"logs"`
	EventID           string     `json:"event_id"`
	Model             string     `json:"model"`
	Sequence          uint64     `json:"sequence"`
	// RolloutID names the fleet rollout that ordered this update (or that a
	// rollout event is about); CommandID the platform command. Empty for an
	// update run by hand.
	RolloutID string `json:"rollout_id,omitempty"`
	CommandID string `json:"command_id,omitempty"`
}

// Terminal reports whether the event ends an update. A full outbox never drops
// a terminal event: the platform must learn how every update ended.
func (e *Event) Terminal() bool {
	switch e.Status {
	case StatusSuccess, StatusFailed, StatusRolledBack, StatusRejected, StatusNothingToDo:
		return true
	}
	return false
}

func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
