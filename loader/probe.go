package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// ErrProbe marks a model whose answer to its own probe input is not its
// expected output.
var ErrProbe = errors.New("probe answer differs from the expected output")

// checkProbe runs the slot's probe input through m and compares the answer
// with the expected output. A slot without a probe passes, with a log line
// from the caller.
func checkProbe(ctx context.Context, m Model, s *Slot) error {
	if s.Probe.Input == "" {
		return nil
	}
	input, err := s.ReadFile(s.Probe.Input)
	if err != nil {
		return fmt.Errorf("read probe input: %w", err)
	}
	expectedRaw, err := s.ReadFile(s.Probe.Expected)
	if err != nil {
		return fmt.Errorf("read probe expected output: %w", err)
	}
	tols, err := readTolerances(s)
	if err != nil {
		return err
	}
	got, err := m.Probe(ctx, input)
	if err != nil {
		return fmt.Errorf("run probe: %w", err)
	}
	return matchJSONTolerances(expectedRaw, got, s.Probe.Tolerance, tols)
}

// readTolerances reads the slot's per-field tolerances, if it names a file.
func readTolerances(s *Slot) (map[string]float64, error) {
	if s.Probe.Tolerances == "" {
		return nil, nil
	}
	raw, err := s.ReadFile(s.Probe.Tolerances)
	if err != nil {
		return nil, fmt.Errorf("read probe tolerances: %w", err)
	}
	var tols map[string]float64
	if err := json.Unmarshal(raw, &tols); err != nil {
		return nil, fmt.Errorf("%s must be a JSON object of JSON pointer → tolerance: %w", s.Probe.Tolerances, err)
	}
	return tols, nil
}

// matchJSON reports whether got holds everything expected holds: objects may
// carry extra keys (a version, say), arrays must have the same length, numbers
// may differ by at most tol, anything else must be equal.
func matchJSON(expected, got []byte, tol float64) error {
	return matchJSONTolerances(expected, got, tol, nil)
}

// matchJSONTolerances is matchJSON with per-field tolerances: tols maps an
// RFC 6901 JSON pointer to the tolerance of every number at or below it (the
// deepest wins), as modelslot's probe reads probe/tolerances.json.
func matchJSONTolerances(expected, got []byte, tol float64, tols map[string]float64) error {
	var e, g any
	if err := decode(expected, &e); err != nil {
		return fmt.Errorf("probe expected output is not JSON: %w", err)
	}
	if err := decode(got, &g); err != nil {
		return fmt.Errorf("%w: answer is not JSON: %v", ErrProbe, err)
	}
	if where := (matcher{tols}).mismatch("$", "", e, g, tol); where != "" {
		return fmt.Errorf("%w: %s", ErrProbe, where)
	}
	return nil
}

func decode(b []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

type matcher struct{ tols map[string]float64 }

// mismatch returns where e and g first differ, or "" when g matches e; ptr is
// the JSON pointer of at, which may set the tolerance.
func (m matcher) mismatch(at, ptr string, e, g any, tol float64) string {
	if t, ok := m.tols[ptr]; ok {
		tol = t
	}
	switch e := e.(type) {
	case map[string]any:
		gm, ok := g.(map[string]any)
		if !ok {
			return at + ": want an object"
		}
		for k, ev := range e {
			if w := m.mismatch(at+"."+k, ptr+"/"+escapeToken(k), ev, gm[k], tol); w != "" {
				return w
			}
		}
	case []any:
		ga, ok := g.([]any)
		if !ok || len(ga) != len(e) {
			return fmt.Sprintf("%s: want an array of %d", at, len(e))
		}
		for i := range e {
			if w := m.mismatch(fmt.Sprintf("%s[%d]", at, i), fmt.Sprintf("%s/%d", ptr, i), e[i], ga[i], tol); w != "" {
				return w
			}
		}
	case json.Number:
		ef, _ := e.Float64()
		gn, ok := g.(json.Number)
		gf, err := gn.Float64()
		if !ok || err != nil || math.IsNaN(gf) || math.Abs(ef-gf) > tol {
			return fmt.Sprintf("%s: got %v, want %v ± %g", at, g, e, tol)
		}
	default:
		if e != g {
			return fmt.Sprintf("%s: got %v, want %v", at, g, e)
		}
	}
	return ""
}

// escapeToken writes a key as a JSON pointer reference token.
func escapeToken(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
