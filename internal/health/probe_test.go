package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
	if err == nil || !strings.HasPrefix(err.Error(), ReasonHealthCheck) || time.Since(start) > 3*time.Second {
		t.Fatalf("Run = %v after %s", err, time.Since(start))
	}
}
