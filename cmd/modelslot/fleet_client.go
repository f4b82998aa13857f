package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modelslot/modelslot/internal/config"
)

// apiClient talks to the controller's JSON API (docs/fleet.md § API).
type apiClient struct {
	base string
	http *http.Client
}

// controllerFlag registers --controller: the controller's URL, default
// [fleet] url from the config, else http://127.0.0.1:8470.
func controllerFlag(fs *flag.FlagSet) *string {
	return fs.String("controller", "", "controller URL (default [fleet] url, else http://"+config.DefaultFleetListen+")")
}

func newAPIClient(g *globalOptions, flagURL string) *apiClient {
	base := flagURL
	if base == "" {
		base = "http://" + config.DefaultFleetListen
		if cfg, err := config.Load(g.config); err == nil && cfg.Fleet != nil {
			base = cfg.Fleet.URL
		}
	}
	return &apiClient{base: base, http: &http.Client{Timeout: 60 * time.Second}}
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return usageErrorf("--controller %q: %v", c.base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the controller at %s: %w; is `modelslot fleet serve` running there (--controller)?", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("controller %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		if resp.StatusCode == http.StatusBadRequest {
			return usageErrorf("controller: %s", e.Error)
		}
		return &apiError{status: resp.StatusCode, msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("controller %s answered what is not the expected JSON: %w", c.base, err)
	}
	return nil
}

// apiError is a refusal by the controller (not found, wrong state).
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return "controller: " + e.msg }
