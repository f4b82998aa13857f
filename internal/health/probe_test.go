package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// server answers like the demo server: outputs, version; delay and a fixed
// outputs override simulate the broken variants.
func server(t *testing.T, version string, outputs []float64, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"outputs": [][]float64{outputs}, "version": version, "model": "demo"})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/infer"
}

func TestProbe(t *testing.T) {
	expected := []byte(`{"outputs": [[0.25, -1.5]]}`)
	tests := []struct {
		name    string
		url     string
		version string
		want    string // "" = pass
	}{
		{"good", server(t, "v2", []float64{0.25001, -1.5}, 0), "v2", ""},
		{"wrong output", server(t, "v2", []float64{0.25, 1.5}, 0), "v2", "probe_mismatch: outputs[0][1] (got 1.5, want -1.5"},
		{"old version answering", server(t, "v1", []float64{0.25, -1.5}, 0), "v2", `probe_mismatch: the answer came from version "v1"`},
		{"slow", server(t, "v2", []float64{0.25, -1.5}, 60*time.Millisecond), "v2", "latency_limit: probe latency"},
		{"nothing listening", "http://127.0.0.1:1/v1/infer", "v2", "health_check_failed: probe request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Probe{URL: tt.url, Input: []byte(`{"inputs":[[1,2]]}`), Expected: expected, Tolerance: 1e-3,
				Version: tt.version, Samples: 3, MaxLatency: 30 * time.Millisecond, Timeout: 2 * time.Second}
			err := p.Run(context.Background())
			if tt.want == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
				t.Fatalf("Run = %v, want %q…", err, tt.want)
			}
		})
	}
}

func TestProbeTimeoutIsAFailureNotAHang(t *testing.T) {
	url := server(t, "v2", nil, 5*time.Second)
	p := Probe{URL: url, Expected: []byte(`{}`), Timeout: 100 * time.Millisecond}
	start := time.Now()
	err := p.Run(context.Background())
	if c, _ := reason.Of(err); c != ReasonHealthCheck || time.Since(start) > 3*time.Second {
		t.Fatalf("Run = %v after %s", err, time.Since(start))
	}
}

// countingServer answers like server, after delay, and counts the requests it got.
func countingServer(t *testing.T, delay time.Duration) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"outputs": [][]float64{{0.25, -1.5}}, "version": "v2"})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/infer", &n
}

// A slow server is judged once the median is certain to be over the limit:
// the unanswered warm-up and two timed samples, not one warm-up and five full
// answers; a request cut short counts as over the limit, so the verdict is
// latency_limit, not health_check_failed.
func TestProbeSlowServerIsJudgedEarly(t *testing.T) {
	url, served := countingServer(t, 3*time.Second)
	p := Probe{URL: url, Input: []byte(`{}`), Expected: []byte(`{"outputs": [[0.25, -1.5]]}`), Tolerance: 1e-3,
		Version: "v2", Samples: 5, MaxLatency: 100 * time.Millisecond, Timeout: 10 * time.Second}
	start := time.Now()
	err := p.Run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "latency_limit: probe latency over 100ms: 3 of 5") {
		t.Fatalf("Run = %v, want latency_limit with 3 of 5 samples over", err)
	}
	if got := served.Load(); got != 3 {
		t.Fatalf("the server got %d requests, want 3: the verdict is certain after 3 of 5 samples over the limit", got)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("verdict after %s, want about 4 × 100ms (warm-up bound 2 × the limit, 2 samples at the limit)", took)
	}
}

// A fast server passes as soon as most samples are within the limit.
func TestProbeFastServerStopsSamplingAtMajority(t *testing.T) {
	url, served := countingServer(t, 0)
	p := Probe{URL: url, Input: []byte(`{}`), Expected: []byte(`{}`), Version: "v2", Samples: 5,
		MaxLatency: 2 * time.Second, Timeout: 10 * time.Second}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := served.Load(); got != 4 {
		t.Fatalf("the server got %d requests, want 4 (warm-up + 3 of 5 samples within the limit)", got)
	}
}

func TestLatencyJudge(t *testing.T) {
	const limit = 100 * time.Millisecond
	over, under := 200*time.Millisecond, 50*time.Millisecond
	tests := []struct {
		name     string
		n        int
		samples  []time.Duration // 0 = no answer within the limit
		decided  int             // samples after which the verdict is certain
		overWins bool
	}{
		{"5, three over first", 5, []time.Duration{over, over, over}, 3, true},
		{"5, three under first", 5, []time.Duration{under, under, under}, 3, false},
		{"5, mixed, over wins", 5, []time.Duration{over, under, 0, under, over}, 5, true},
		{"5, mixed, under wins", 5, []time.Duration{under, over, over, under, under}, 5, false},
		{"4, two over is the upper median", 4, []time.Duration{over, under, over}, 3, true},
		{"4, three under needed", 4, []time.Duration{under, under, over, under}, 4, false},
		{"1", 1, []time.Duration{0}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newLatencyJudge(tt.n, limit)
			for i, d := range tt.samples {
				if j.decided() {
					t.Fatalf("decided after %d samples, want %d", i, tt.decided)
				}
				j.add(max(d, limit), d != 0)
			}
			if !j.decided() || len(tt.samples) != tt.decided {
				t.Fatalf("not decided after %d samples", len(tt.samples))
			}
			if err := j.verdict(); (err != nil) != tt.overWins {
				t.Fatalf("verdict = %v, want over the limit: %v", err, tt.overWins)
			}
		})
	}
	j := newLatencyJudge(3, 0) // no limit: every sample is taken, none judged
	for range 2 {
		j.add(time.Hour, true)
	}
	if j.decided() {
		t.Fatal("without a limit, decided before all samples")
	}
	if j.add(time.Hour, true); !j.decided() || j.verdict() != nil {
		t.Fatal("without a limit, a latency is a failure")
	}
}
