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

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/netconf"
)

// apiClient talks to the controller's JSON API (docs/fleet.md § API).
type apiClient struct {
	base  string
	token string // --api-token-file or [fleet] api_token_file
	err   error  // the token file could not be read: every call fails with it
	http  *http.Client
}

// controllerFlags are where the controller is and how to prove who we are.
type controllerFlags struct{ url, tokenFile string }

// controllerFlag registers --controller (default [fleet] url from the config,
// else http://127.0.0.1:8470) and --api-token-file (default [fleet]
// api_token_file).
func controllerFlag(fs *flag.FlagSet) *controllerFlags {
	var f controllerFlags
	fs.StringVar(&f.url, "controller", "", "controller URL (default [fleet] url, else http://"+config.DefaultFleetListen+")")
	fs.StringVar(&f.tokenFile, "api-token-file", "", "file holding the controller's API token (default [fleet] api_token_file)")
	return &f
}

func newAPIClient(g *cli.Options, f *controllerFlags) *apiClient {
	c := &apiClient{base: f.url, http: &http.Client{Timeout: 60 * time.Second}}
	tokenFile := f.tokenFile
	if cfg, err := config.Load(g.Config); err == nil && cfg.Fleet != nil {
		if c.base == "" {
			c.base = cfg.Fleet.URL
		}
		if tokenFile == "" {
			tokenFile = cfg.Fleet.APITokenFile
		}
	}
	if c.base == "" {
		c.base = "http://" + config.DefaultFleetListen
	}
	if tokenFile != "" {
		tok, err := netconf.Load(netconf.Files{TokenFile: tokenFile}, "")
		if err != nil {
			c.err = fmt.Errorf("%w: %w", config.ErrConfig, err)
		} else {
			c.token = tok.Token
		}
	}
	return c
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	if c.err != nil {
		return c.err
	}
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
		return cli.UsageErrorf("--controller %q: %v", c.base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the controller at %s: %w; is `modelslot-fleet fleet serve` running there (--controller)?", c.base, err)
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
			return cli.UsageErrorf("controller: %s", e.Error)
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
