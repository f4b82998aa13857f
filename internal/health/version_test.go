package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// answering serves body (as JSON) with the given headers to every POST.
func answering(t *testing.T, body any, header map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestProbeVersionCheck(t *testing.T) {
	out := []any{0.5}
	tests := []struct {
		name   string
		check  string // "" = default
		body   any
		header map[string]string
		want   string // "" = pass
	}{
		{"default field", "", map[string]any{"y": out, "version": "v2"}, nil, ""},
		{"default, old version", "", map[string]any{"y": out, "version": "v1"}, nil, `probe_mismatch: the answer came from version "v1", not "v2" under trial (field /version)`},
		{"default, no version field", "", map[string]any{"y": out}, nil, "probe_mismatch: the answer names no version (field /version is missing"},
		{"pointer", "json:/meta/model~1version", map[string]any{"y": out, "meta": map[string]any{"model/version": "v2"}}, nil, ""},
		{"pointer, old version", "json:/meta/model~1version", map[string]any{"y": out, "meta": map[string]any{"model/version": "v1"}}, nil, `probe_mismatch: the answer came from version "v1"`},
		{"pointer into an array", "json:/outputs/0/version", map[string]any{"y": out, "outputs": []any{map[string]any{"version": "v2"}}}, nil, ""},
		{"numbered version", "json:/model_version", map[string]any{"y": out, "model_version": 2}, nil, `probe_mismatch: the answer came from version "2"`},
		{"header", "header:x-model-version", map[string]any{"y": out}, map[string]string{"X-Model-Version": "v2"}, ""},
		{"header, old version", "header:X-Model-Version", map[string]any{"y": out, "version": "v2"}, map[string]string{"X-Model-Version": "v1"}, `probe_mismatch: the answer came from version "v1", not "v2" under trial (header X-Model-Version)`},
		{"header missing", "header:X-Model-Version", map[string]any{"y": out, "version": "v2"}, nil, "probe_mismatch: the answer names no version (header X-Model-Version"},
		{"off: no version needed", "off", map[string]any{"y": out}, nil, ""},
		{"off: output still checked", "off", map[string]any{"y": []any{0.7}}, nil, "probe_mismatch: y[0] (got 0.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var vc VersionCheck
			if tt.check != "" {
				var err error
				if vc, err = ParseVersionCheck(tt.check); err != nil {
					t.Fatal(err)
				}
			}
			p := Probe{URL: answering(t, tt.body, tt.header), Input: []byte(`{}`), Expected: []byte(`{"y": [0.5]}`),
				Tolerance: 1e-4, Version: "v2", VersionCheck: vc, Samples: 1, Timeout: 2 * time.Second}
			err := p.Run(context.Background())
			if tt.want == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
				t.Fatalf("Run = %v, want %q…", err, tt.want)
			}
			// A wrong or missing version may be the old process still
			// answering: retried until the start timeout, not final at once.
			if err != nil && strings.Contains(tt.name, "version") && !errors.Is(err, errNotReady) {
				t.Fatalf("Run = %v: a version mismatch must be retried (errNotReady)", err)
			}
		})
	}
}

func TestParseVersionCheck(t *testing.T) {
	for _, ok := range []string{"off", "json:/version", "json:/a/0/b~1c", "header:X-Model-Version"} {
		v, err := ParseVersionCheck(ok)
		if err != nil || v.String() != ok {
			t.Errorf("ParseVersionCheck(%q) = %v, %v", ok, v, err)
		}
	}
	for _, bad := range []string{"", "version", "json:version", "json:", "json:/a~2", "header:", "header:X Model", "header:X:Y", "Off"} {
		if _, err := ParseVersionCheck(bad); !errors.Is(err, ErrVersionCheck) {
			t.Errorf("ParseVersionCheck(%q) = %v, want ErrVersionCheck", bad, err)
		}
	}
	var back VersionCheck
	if b, _ := json.Marshal(map[string]VersionCheck{"v": {text: "header:X-V", header: "X-V"}}); string(b) != `{"v":"header:X-V"}` {
		t.Errorf("marshalled as %s", b)
	} else if err := back.UnmarshalText([]byte("header:X-V")); err != nil || back.String() != "header:X-V" {
		t.Errorf("UnmarshalText: %v %v", back, err)
	}
	var zero VersionCheck
	if !zero.IsDefault() || zero.Off() || zero.String() != DefaultVersionCheck {
		t.Errorf("zero VersionCheck = %q, want the default %q", zero, DefaultVersionCheck)
	}
}

// Per-field tolerances: the deepest pointer in force wins, the probe's own
// tolerance applies elsewhere.
func TestProbeTolerancesPerField(t *testing.T) {
	url := answering(t, map[string]any{"logits": []any{1.0009, 2.0}, "prob": []any{0.5009}, "version": "v2"}, nil)
	tests := []struct {
		name string
		tols map[string]float64
		want string
	}{
		{"one tolerance for all", nil, "probe_mismatch: logits[0] (got 1.0009, want 1 ± 0.0001)"},
		{"logits looser", map[string]float64{"/logits": 1e-3}, "probe_mismatch: prob[0] (got 0.5009, want 0.5 ± 0.0001)"},
		{"logits and prob looser", map[string]float64{"/logits": 1e-3, "/prob/0": 1e-3}, ""},
		{"whole answer looser", map[string]float64{"": 1e-3}, ""},
		{"deepest wins", map[string]float64{"": 1e-3, "/logits/0": 1e-5}, "probe_mismatch: logits[0] (got 1.0009, want 1 ± 1e-05)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Probe{URL: url, Input: []byte(`{}`), Expected: []byte(`{"logits": [1.0, 2.0], "prob": [0.5]}`),
				Tolerance: 1e-4, Tolerances: tt.tols, Version: "v2", Samples: 1, Timeout: 2 * time.Second}
			err := p.Run(context.Background())
			if (tt.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tt.want)) {
				t.Fatalf("Run = %v, want %q", err, tt.want)
			}
		})
	}
}

// A server may answer with something other than an object (a bare array).
func TestProbeAnswerNeedNotBeAnObject(t *testing.T) {
	p := Probe{URL: answering(t, []any{0.25, 0.75}, nil), Input: []byte(`{}`), Expected: []byte(`[0.25, 0.75]`),
		Tolerance: 1e-4, Version: "v2", VersionCheck: VersionCheck{off: true, text: "off"}, Samples: 1, Timeout: 2 * time.Second}
	if err := p.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	p.Expected = []byte(`[0.25, 0.5]`)
	if err := p.Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "probe_mismatch: [1] (got 0.75") {
		t.Fatalf("Run = %v, want the second number named", err)
	}
}

// A server that answers 503 while it loads is not up yet: the confirmer
// retries it until the start timeout; any other error status is final.
func TestProbe503IsNotReady(t *testing.T) {
	for code, retried := range map[int]bool{http.StatusServiceUnavailable: true, http.StatusInternalServerError: false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Loading model", code)
		}))
		p := Probe{URL: srv.URL, Input: []byte(`{}`), Expected: []byte(`{}`), Version: "v2", Samples: 1, Timeout: time.Second}
		err := p.Run(context.Background())
		srv.Close()
		if err == nil || !strings.HasPrefix(err.Error(), "health_check_failed: probe answered") || errors.Is(err, errNotReady) != retried {
			t.Errorf("status %d: Run = %v, want retried: %v", code, err, retried)
		}
	}
}
