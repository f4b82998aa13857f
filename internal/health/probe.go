package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"
)

// Failure reasons of a probe (DESIGN.md § Events).
const (
	ReasonProbeMismatch = "probe_mismatch"
	ReasonLatencyLimit  = "latency_limit"
	ReasonHealthCheck   = "health_check_failed"
)

// maxProbeAnswer bounds a probe answer: a health check must not be a way to make
// modelslot allocate without limit.
const maxProbeAnswer = 16 << 20

// Probe sends a model's own test input to the serving endpoint and checks the
// answer against the model's expected output. The answer must also name the
// version under trial: a reload that silently kept the old model fails.
type Probe struct {
	URL        string
	Input      []byte  // request body (probe/input.json)
	Expected   []byte  // expected answer, a JSON object whose keys must all match
	Tolerance  float64 // absolute tolerance on numbers
	Version    string  // the version the answer must carry in "version"; "" skips the check
	Samples    int     // timed requests after one warm-up; the median must be under MaxLatency
	MaxLatency time.Duration
	Timeout    time.Duration // per request
	Client     *http.Client
}

// Run performs the probe and returns nil or an error whose text starts with a
// failure reason.
func (p Probe) Run(ctx context.Context) error {
	var expected map[string]any
	if err := json.Unmarshal(p.Expected, &expected); err != nil {
		return fmt.Errorf("%s: the model's expected probe output is not a JSON object: %v", ReasonHealthCheck, err)
	}
	answer, _, err := p.once(ctx) // warm-up: the first request may load lazily
	if err != nil {
		return err
	}
	if err := p.check(expected, answer); err != nil {
		return err
	}
	return p.timeSamples(ctx)
}

func (p Probe) timeSamples(ctx context.Context) error {
	n := max(p.Samples, 1)
	took := make([]time.Duration, 0, n)
	for range n {
		_, d, err := p.once(ctx)
		if err != nil {
			return err
		}
		took = append(took, d)
	}
	slices.Sort(took)
	median := took[len(took)/2]
	if p.MaxLatency > 0 && median > p.MaxLatency {
		return fmt.Errorf("%s: probe latency %s > %s (median of %d)", ReasonLatencyLimit,
			median.Round(time.Millisecond), p.MaxLatency, n)
	}
	return nil
}

// once sends one probe request and returns the decoded answer and its latency.
func (p Probe) once(ctx context.Context) (map[string]any, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(p.Input))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: probe_url %q: %v", ReasonHealthCheck, p.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := p.client().Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: probe request to %s: %v", ReasonHealthCheck, p.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeAnswer))
	took := time.Since(start)
	if err != nil {
		return nil, took, fmt.Errorf("%s: read probe answer: %v", ReasonHealthCheck, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, took, fmt.Errorf("%s: probe answered %s: %.200s", ReasonHealthCheck, resp.Status, body)
	}
	var answer map[string]any
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, took, fmt.Errorf("%s: probe answer is not a JSON object: %v", ReasonProbeMismatch, err)
	}
	return answer, took, nil
}

func (p Probe) check(expected, answer map[string]any) error {
	if p.Version != "" {
		if got, _ := answer["version"].(string); got != p.Version {
			return fmt.Errorf("%s: the answer came from version %q, not %q under trial", ReasonProbeMismatch, got, p.Version)
		}
	}
	for k, want := range expected {
		if where, ok := match(want, answer[k], p.Tolerance, k); !ok {
			return fmt.Errorf("%s: %s differs from the expected output", ReasonProbeMismatch, where)
		}
	}
	return nil
}

// match compares JSON values: numbers within tol, objects by the expected keys,
// arrays element by element. It returns the path of the first difference.
func match(want, got any, tol float64, path string) (string, bool) {
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		if !ok || math.IsNaN(g) || math.Abs(g-w) > tol {
			return fmt.Sprintf("%s (got %v, want %v ± %g)", path, got, w, tol), false
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s (length or type differs)", path), false
		}
		for i := range w {
			if where, ok := match(w[i], g[i], tol, fmt.Sprintf("%s[%d]", path, i)); !ok {
				return where, false
			}
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path + " (not an object)", false
		}
		for k := range w {
			if where, ok := match(w[k], g[k], tol, path+"."+k); !ok {
				return where, false
			}
		}
	default:
		if want != got {
			return fmt.Sprintf("%s (got %v, want %v)", path, got, want), false
		}
	}
	return "", true
}

func (p Probe) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 10 * time.Second
}

func (p Probe) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}
