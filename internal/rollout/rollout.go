// Package rollout is the fleet's rollout document: which signed manifest a
// model's channel rolls out to, in which stages, and how far it has got. The
// controller writes and signs it with a rollout key; devices open it, check its
// signature, target and freshness, and decide from it alone whether to install,
// wait, hold or roll back. Everything here is pure (no I/O, no clock of its
// own), so the device and the controller compute the same cohorts and verdicts.
//
// A rollout key cannot make a device install anything the publisher did not
// sign: the device still installs only manifests signed by its trusted_keys and
// never downgrades. At worst a rollout key pauses a rollout or picks among
// published versions.
package rollout

import (
	"time"
)

// Schema is the document format version this package writes and understands.
const Schema = 1

// States of a rollout. Running, paused and halted may change into each other
// and into the terminal states; aborted and completed are final.
const (
	StateRunning   = "running"   // devices in the reached stages install the target
	StatePaused    = "paused"    // by a person: no device starts; resume goes on
	StateHalted    = "halted"    // the failure threshold was crossed: no device starts
	StateAborted   = "aborted"   // final: no device starts; by policy, those that took it roll back
	StateCompleted = "completed" // final: every stage reached and passed
)

// MaxStages bounds the stage list; real rollouts use 2 to 5.
const MaxStages = 32

// FullShare is 100 % in basis points.
const FullShare = 10000

// Rollout is the signed document. Revision grows with every change the
// controller signs, so a device can refuse an older copy of the same rollout
// that a mirror replays.
type Rollout struct {
	Schema   int    `json:"schema"`
	ID       string `json:"id"`
	Revision uint64 `json:"revision"`
	Model    string `json:"model"`
	Channel  string `json:"channel"`
	Target   Target `json:"target"`
	// Salt makes cohorts differ between rollouts, so the same devices are not
	// always the first to take a new version.
	Salt   string  `json:"salt"`
	Stages []Stage `json:"stages"`
	State  string  `json:"state"`
	// Stage is the index of the last stage opened (0: only the first).
	Stage int `json:"stage"`
	// Reason says why the rollout was paused, halted or aborted, for people.
	Reason string `json:"reason,omitempty"`
	// AbortRollback: when the rollout is aborted, devices that took the target
	// under this rollout roll back to their previous version.
	AbortRollback bool      `json:"abort_rollback"`
	IssuedAt      time.Time `json:"issued_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// Target is the version a rollout installs: a manifest in the repository,
// named by URL and pinned by the sha256 of its envelope bytes.
type Target struct {
	Version        string `json:"version"`
	Sequence       uint64 `json:"sequence"`
	ManifestURL    string `json:"manifest_url"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// Stage is one step of a rollout. Shares are cumulative and in basis points:
// stages of 500, 3000, 10000 reach 5 %, then 30 %, then every device.
type Stage struct {
	Share uint32 `json:"share_bp"`
	// MinSoak is how long the stage runs before the next may open, however
	// quickly its devices succeed.
	MinSoak Duration `json:"min_soak"`
	// Success is the share of the stage's devices (basis points) that must have
	// succeeded before the next stage opens.
	Success uint32 `json:"success_bp"`
	// MaxFailures halts the rollout when this many devices failed (0: no
	// count limit); MaxFailureShare when that share (basis points) of the
	// devices reached so far failed (0: no share limit). At least one is set.
	MaxFailures     int    `json:"max_failures"`
	MaxFailureShare uint32 `json:"max_failure_bp"`
}

// Final reports whether state can never change again.
func Final(state string) bool { return state == StateAborted || state == StateCompleted }
