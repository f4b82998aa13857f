// Package jsonptr parses RFC 6901 JSON pointers ("/outputs/0/logits") and looks
// them up in values decoded by encoding/json. The config names a field of a
// probe answer with one, and a model's probe tolerances are keyed by them; a
// pointer is checked when it is read, so a typo fails at load, not mid-trial.
package jsonptr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is the kind of every parse error.
var ErrSyntax = errors.New("not a JSON pointer")

// Pointer is a parsed JSON pointer; the zero value ("") names the whole value.
type Pointer struct {
	text   string
	tokens []string
}

// Parse checks s against RFC 6901: empty, or "/"-separated reference tokens in
// which "~" is only written as "~0" ("~") or "~1" ("/").
func Parse(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return Pointer{}, fmt.Errorf("%w: %q must start with \"/\" (RFC 6901), e.g. \"/version\"", ErrSyntax, s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		tok, err := unescape(p)
		if err != nil {
			return Pointer{}, fmt.Errorf("%w: %q: %v", ErrSyntax, s, err)
		}
		parts[i] = tok
	}
	return Pointer{text: s, tokens: parts}, nil
}

func unescape(p string) (string, error) {
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 == len(p) || (p[i+1] != '0' && p[i+1] != '1')) {
			return "", errors.New(`"~" must be written "~0", and "/" inside a key "~1"`)
		}
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(p), nil
}

// String returns the pointer as written.
func (p Pointer) String() string { return p.text }

// Get returns the value p names in v (decoded by encoding/json into any), and
// false when there is none: a missing key, an index out of range or not a
// decimal without leading zeros, or a step into a number or string.
func (p Pointer) Get(v any) (any, bool) {
	for _, tok := range p.tokens {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, ok := index(tok, len(c))
			if !ok {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func index(tok string, n int) (int, bool) {
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil && i >= 0 && i < n
}

// Escape returns key as one reference token ("a/b" → "a~1b").
func Escape(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
