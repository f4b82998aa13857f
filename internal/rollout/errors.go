package rollout

import (
	"errors"
	"fmt"
)

// ErrRefused is the kind of every reason a device refuses a rollout document.
// A refused document changes nothing on the device; the reason is reported.
var ErrRefused = errors.New("rollout refused")

// The refusal reasons, each an ErrRefused. Callers tell them apart with
// errors.Is and report them with Reason.
var (
	// ErrUnknownKey: no signature by a key in rollout_keys.
	ErrUnknownKey = fmt.Errorf("%w: not signed by a trusted rollout key", ErrRefused)
	// ErrStale: expired (beyond the clock-skew slack), issued in the future, or
	// older than a copy the device already holds.
	ErrStale = fmt.Errorf("%w: stale", ErrRefused)
	// ErrWrongTarget: for another model or channel than the one the device
	// follows at this URL or topic.
	ErrWrongTarget = fmt.Errorf("%w: for another model or channel", ErrRefused)
	// ErrInvalid: not a rollout document this modelslot can use (malformed,
	// bad signature, bad stage list, unknown state or schema).
	ErrInvalid = fmt.Errorf("%w: invalid", ErrRefused)
)

// Reason codes of refusals, the failure_reason of the event that reports one.
const (
	ReasonUnknownKey  = "rollout_unknown_key"
	ReasonStale       = "rollout_stale"
	ReasonWrongTarget = "rollout_wrong_target"
	ReasonInvalid     = "rollout_invalid"
)

// Reason returns the reason code of a refusal, or "" when err is not one.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, ErrStale):
		return ReasonStale
	case errors.Is(err, ErrWrongTarget):
		return ReasonWrongTarget
	case errors.Is(err, ErrInvalid):
		return ReasonInvalid
	}
	return ""
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
