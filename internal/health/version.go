package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/modelslot/modelslot/internal/reason"

	"github.com/modelslot/modelslot/internal/jsonptr"
)

// How a probe answer proves it came from the version under trial
// (`probe_version` in [model.health], docs/config.md).
const (
	VersionJSONPrefix   = "json:"
	VersionHeaderPrefix = "header:"
	VersionOff          = "off"
	// DefaultVersionCheck is the contract of servers built on loader or on
	// integrations/python: a top-level "version" field.
	DefaultVersionCheck = VersionJSONPrefix + "/version"
)

// ErrVersionCheck is the kind of a probe_version setting that cannot be used.
var ErrVersionCheck = errors.New("invalid probe_version")

// VersionCheck is where a probe answer names its version: a JSON pointer into
// the answer, a response header, or nowhere (off: then the unit's new main
// PID is the proof, see Confirmer). The zero value is DefaultVersionCheck.
type VersionCheck struct {
	text    string // as configured; "" for the default
	off     bool
	header  string // canonical header name, or "" for a JSON pointer
	pointer jsonptr.Pointer
}

// ParseVersionCheck reads "json:/pointer", "header:Name" or "off".
func ParseVersionCheck(s string) (VersionCheck, error) {
	switch {
	case s == VersionOff:
		return VersionCheck{text: s, off: true}, nil
	case strings.HasPrefix(s, VersionJSONPrefix):
		p, err := jsonptr.Parse(strings.TrimPrefix(s, VersionJSONPrefix))
		if err != nil {
			return VersionCheck{}, fmt.Errorf("%w %q: %w", ErrVersionCheck, s, err)
		}
		if p.String() == "" {
			return VersionCheck{}, fmt.Errorf("%w %q: the pointer names the whole answer, not a field; e.g. %q", ErrVersionCheck, s, DefaultVersionCheck)
		}
		return VersionCheck{text: s, pointer: p}, nil
	case strings.HasPrefix(s, VersionHeaderPrefix):
		name := strings.TrimPrefix(s, VersionHeaderPrefix)
		if !validHeaderName(name) {
			return VersionCheck{}, fmt.Errorf("%w %q: %q is not a header name (letters, digits and !#$%%&'*+-.^_`|~)", ErrVersionCheck, s, name)
		}
		return VersionCheck{text: s, header: http.CanonicalHeaderKey(name)}, nil
	}
	return VersionCheck{}, fmt.Errorf("%w %q: use %q (a JSON pointer into the answer), \"header:X-Model-Version\", or %q", ErrVersionCheck, s, DefaultVersionCheck, VersionOff)
}

// UnmarshalText lets the config decode the setting directly.
func (v *VersionCheck) UnmarshalText(b []byte) error {
	parsed, err := ParseVersionCheck(string(b))
	if err != nil {
		return err
	}
	*v = parsed
	return nil
}

// MarshalText writes the setting as configured (the default spelt out).
func (v VersionCheck) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Off reports whether the answer carries no version (probe_version = "off").
func (v VersionCheck) Off() bool { return v.off }

// IsDefault reports whether the setting was left out.
func (v VersionCheck) IsDefault() bool { return v.text == "" }

func (v VersionCheck) String() string {
	if v.text == "" {
		return DefaultVersionCheck
	}
	return v.text
}

// found returns the version the answer names, and a description of where it
// was looked for, for the failure text.
func (v VersionCheck) found(body any, header http.Header) (got string, where string, ok bool) {
	if v.header != "" {
		vals := header.Values(v.header)
		return strings.Join(vals, ","), "header " + v.header, len(vals) > 0
	}
	p := v.pointer
	if v.text == "" {
		p, _ = jsonptr.Parse("/version")
	}
	where = "field " + p.String()
	switch x := mustGet(p, body).(type) {
	case string:
		return x, where, true
	case float64: // a server that numbers its versions (1, 2…)
		return strconv.FormatFloat(x, 'f', -1, 64), where, true
	case nil:
		return "", where, false
	default:
		b, _ := json.Marshal(x)
		return string(b), where, true
	}
}

func mustGet(p jsonptr.Pointer, v any) any {
	got, _ := p.Get(v)
	return got
}

// check is nil when the answer names version; else a probe_mismatch that is
// also errNotReady (the old version may still be answering: retried).
func (v VersionCheck) check(version string, body any, header http.Header) error {
	if v.off || version == "" {
		return nil
	}
	got, where, ok := v.found(body, header)
	if !ok {
		return mark(reason.New(ReasonProbeMismatch, "the answer names no version (%s is missing; probe_version = %q): set probe_version to where your server names it, or \"off\"", where, v.String()), errNotReady)
	}
	if got != version {
		return mark(reason.New(ReasonProbeMismatch, "the answer came from version %q, not %q under trial (%s)", got, version, where), errNotReady)
	}
	return nil
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
