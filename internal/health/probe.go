package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/modelslot/modelslot/internal/reason"

	"github.com/modelslot/modelslot/internal/jsonptr"
)

// Failure reasons of a probe (DESIGN.md § Events).
const (
	ReasonProbeMismatch = reason.ProbeMismatch
	ReasonLatencyLimit  = reason.Latency
	ReasonHealthCheck   = reason.HealthCheck
)

// maxProbeAnswer bounds a probe answer: a health check must not be a way to make
// modelslot allocate without limit.
const maxProbeAnswer = 16 << 20

// Probe sends a model's own test input to the serving endpoint and checks the
// answer against the model's expected output. The answer must also name the
// version under trial where VersionCheck says: a reload that silently kept the
// old model fails. With VersionCheck off the answer is not asked for a version
// (the Confirmer proves the new process by its main PID instead).
type Probe struct {
	URL       string
	Input     []byte  // request body (probe/input.json)
	Expected  []byte  // expected answer; an object's keys must all match, others may be extra
	Tolerance float64 // absolute tolerance on numbers
	// Tolerances maps a JSON pointer of the answer to the absolute tolerance
	// of every number at or below it; the deepest pointer wins, Tolerance
	// applies where none does (the model's probe/tolerances.json).
	Tolerances   map[string]float64
	Version      string       // the version the answer must name; "" skips the check
	VersionCheck VersionCheck // where the answer names it; the zero value: field "version"
	Samples      int          // timed requests after one warm-up; the median must be under MaxLatency
	MaxLatency   time.Duration
	Timeout      time.Duration // per request when MaxLatency is 0, and the most any request may take
	Client       *http.Client
}

// answer is one decoded probe answer.
type answer struct {
	body   any
	header http.Header
}

// Run performs the probe and returns nil or an error whose text starts with a
// failure reason. With MaxLatency set, sampling stops as soon as the median's
// side of the limit is certain (see latencyJudge), and a request not answered
// within its bound counts as over the limit: a server that never answers in
// time is judged in about (Samples/2 + 2) × MaxLatency (the warm-up's 2 ×
// MaxLatency, then Samples/2 samples), not after every sample's full answer.
func (p Probe) Run(ctx context.Context) error {
	var expected any
	if err := json.Unmarshal(p.Expected, &expected); err != nil {
		return reason.New(ReasonHealthCheck, "the model's expected probe output is not JSON: %v", err)
	}
	j := newLatencyJudge(max(p.Samples, 1), p.MaxLatency)
	// Warm-up: the first request may be slow (lazy load, cold caches) and is
	// not timed, within 2 × MaxLatency. Later than that it counts as the first
	// timed sample, over the limit, so a slow server is not waited for.
	answer, took, err := p.once(ctx, p.warmupTimeout())
	switch {
	case err == nil:
		if err := p.check(expected, answer); err != nil {
			return err
		}
	case p.MaxLatency > 0 && errors.Is(err, errNoAnswerInTime):
		j.add(took, false)
	default:
		return err
	}
	return p.timeSamples(ctx, expected, j)
}

// timeSamples sends timed requests until j's verdict is certain. Every answer
// is checked like the warm-up's: the warm-up may have gone unanswered.
func (p Probe) timeSamples(ctx context.Context, expected any, j *latencyJudge) error {
	for !j.decided() {
		answer, took, err := p.once(ctx, p.sampleTimeout())
		if err != nil {
			if p.MaxLatency > 0 && errors.Is(err, errNoAnswerInTime) {
				j.add(took, false)
				continue
			}
			return err
		}
		if err := p.check(expected, answer); err != nil {
			return err
		}
		j.add(took, true)
	}
	return j.verdict()
}

// once sends one probe request, bounded by timeout, and returns the decoded
// answer and its latency. A request that got no answer is errNotReady, and
// also errNoAnswerInTime when its own timeout (not ctx) cut it short.
func (p Probe) once(ctx context.Context, timeout time.Duration) (answer, time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, p.URL, bytes.NewReader(p.Input))
	if err != nil {
		return answer{}, 0, reason.New(ReasonHealthCheck, "probe_url %q: %v", p.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.client().Do(req)
	if err != nil {
		err = reason.New(ReasonHealthCheck, "probe request to %s: %v", p.URL, err)
		if rctx.Err() != nil && ctx.Err() == nil {
			return answer{}, time.Since(start), mark(err, errNotReady, errNoAnswerInTime)
		}
		return answer{}, time.Since(start), mark(err, errNotReady)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeAnswer))
	took := time.Since(start)
	if err != nil {
		err = reason.New(ReasonHealthCheck, "read probe answer: %v", err)
		if rctx.Err() != nil && ctx.Err() == nil { // the answer began but did not end in time
			return answer{}, took, mark(err, errNoAnswerInTime)
		}
		return answer{}, took, err
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		// "Not ready yet": llama.cpp's server, for one, answers 503 while it
		// loads the model after it began to listen. Retried like no answer.
		err := reason.New(ReasonHealthCheck, "probe answered %s (not ready): %.200s", resp.Status, body)
		return answer{}, took, mark(err, errNotReady)
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, took, reason.New(ReasonHealthCheck, "probe answered %s: %.200s", resp.Status, body)
	}
	a := answer{header: resp.Header}
	if err := json.Unmarshal(body, &a.body); err != nil {
		return answer{}, took, reason.New(ReasonProbeMismatch, "probe answer is not JSON: %v", err)
	}
	return a, took, nil
}

func (p Probe) check(expected any, a answer) error {
	if err := p.VersionCheck.check(p.Version, a.body, a.header); err != nil {
		return err
	}
	m := matcher{tol: p.Tolerances}
	if where, ok := m.match(expected, a.body, p.Tolerance, "", ""); !ok {
		return reason.New(ReasonProbeMismatch, "%s differs from the expected output", where)
	}
	return nil
}

// matcher compares JSON values: numbers within the tolerance in force, objects
// by the expected keys, arrays element by element.
type matcher struct{ tol map[string]float64 }

// match returns the path of the first difference ("outputs[0][1]"); ptr is the
// JSON pointer of the same place, which selects the tolerance.
func (m matcher) match(want, got any, tol float64, path, ptr string) (string, bool) {
	if t, ok := m.tol[ptr]; ok {
		tol = t
	}
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		if !ok || math.IsNaN(g) || math.Abs(g-w) > tol {
			return fmt.Sprintf("%s (got %v, want %v ± %g)", orRoot(path), got, w, tol), false
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s (length or type differs)", orRoot(path)), false
		}
		for i := range w {
			if where, ok := m.match(w[i], g[i], tol, fmt.Sprintf("%s[%d]", path, i), ptr+"/"+strconv.Itoa(i)); !ok {
				return where, false
			}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return orRoot(path) + " (not an object)", false
		}
		for _, k := range slices.Sorted(maps.Keys(w)) { // in a stable order: the same answer names the same field
			if where, ok := m.match(w[k], g[k], tol, join(path, k), ptr+"/"+jsonptr.Escape(k)); !ok {
				return where, false
			}
		}
	default:
		if want != got {
			return fmt.Sprintf("%s (got %v, want %v)", orRoot(path), got, want), false
		}
	}
	return "", true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "the answer"
	}
	return path
}

func (p Probe) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 10 * time.Second
}

// warmupTimeout bounds the untimed first request: 2 × MaxLatency when latency
// is judged, else Timeout.
func (p Probe) warmupTimeout() time.Duration {
	if p.MaxLatency > 0 {
		return min(2*p.MaxLatency, p.timeout())
	}
	return p.timeout()
}

// sampleTimeout bounds a timed request: MaxLatency, since a request still
// unanswered at the limit is over it whatever comes later.
func (p Probe) sampleTimeout() time.Duration {
	if p.MaxLatency > 0 {
		return min(p.MaxLatency, p.timeout())
	}
	return p.timeout()
}

func (p Probe) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}
