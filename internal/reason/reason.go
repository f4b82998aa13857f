// Package reason holds the failure reasons of the health and update contract
// (docs/health.md § Reasons, the failure_reason of every event), each code
// once, and the typed error that carries a code with its detail through every
// layer. Decisions are taken on the code (errors.As, Of), never on the text of
// a message: rewording a message cannot change what a device does.
//
// It is a leaf: it imports nothing of this project, so every package may use it.
package reason

import (
	"errors"
	"fmt"
)

// Code is a failure reason of the contract.
type Code string

// The codes of the contract. Events, state.json, status and metrics carry them.
const (
	// Health of a trial (the version is blamed).
	StartTimeout  Code = "start_timeout"       // not up (READY=1) within start_timeout
	Watchdog      Code = "watchdog_timeout"    // killed by systemd's watchdog
	CrashLoop     Code = "crash_loop"          // exited, restarted, failed or stopped; too many interrupted trials
	Memory        Code = "memory_limit"        // over max_memory, or OOM-killed
	Latency       Code = "latency_limit"       // probe latency over max_latency
	ProbeMismatch Code = "probe_mismatch"      // wrong output, or another version answered
	CheckFailed   Code = "check_failed"        // a check command failed or timed out
	HealthCheck   Code = "health_check_failed" // the probe could not be made

	// Not a verdict on the version.
	ManagerUnreachable Code = "manager_unreachable" // the service manager could not watch the trial
	UnitUnavailable    Code = "unit_unavailable"    // the unit is missing or masked: nothing was swapped
	Activation         Code = "activation_failed"   // the link could not be moved

	// Before activation.
	Verification Code = "verification_failed" // signature, digest, policy
	Download     Code = "download_failed"     // the network, the server, the disk

	// A person's or the platform's wish.
	Manual Code = "manual"
)

// All lists every code, for metrics initialised at zero and for docs tests.
var All = []Code{StartTimeout, Watchdog, CrashLoop, Memory, Latency, ProbeMismatch, CheckFailed, HealthCheck,
	ManagerUnreachable, UnitUnavailable, Activation, Verification, Download, Manual}

// Blames reports whether a failure with this code is a verdict on the version
// under trial: its slot is marked bad. The others end a trial without one.
func (c Code) Blames() bool { return c != ManagerUnreachable }

// Error is a failure with its code: the text is "code: detail", as events'
// logs and state.json show it.
type Error struct {
	Code   Code
	Detail string // what was seen, for a person
	Err    error  // the error behind it, if any (errors.Is and As reach it)
}

func (e *Error) Error() string {
	if e.Detail == "" && e.Err != nil {
		return string(e.Code) + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// New makes an *Error with a formatted detail. A %w in format wraps as
// fmt.Errorf does.
func New(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Detail: err.Error(), Err: errors.Unwrap(err)}
}

// Wrap gives err a code, keeping its text as the detail; nil stays nil. An
// error that has a code already keeps it.
func Wrap(code Code, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := Of(err); ok {
		return err
	}
	return &Error{Code: code, Detail: err.Error(), Err: err}
}

// Of returns the code that err carries, if any.
func Of(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

// CodeOf is Of with a code for errors that carry none.
func CodeOf(err error, otherwise Code) Code {
	if c, ok := Of(err); ok {
		return c
	}
	return otherwise
}
