package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelslot/modelslot/internal/netconf"
)

// etagPoller GETs a URL every so often, sending the last answer's ETag back
// (If-None-Match) so an unchanged document costs a 304, and hands a changed
// body to handle. The ETag is kept only when handle succeeds, so a body that
// could not be taken in is read again next time.
type etagPoller struct {
	url     string
	every   time.Duration
	maxSize int64
	what    string // for logs: "command list", "channel of demo"
	handle  func(body []byte) error
	etag    string
	client  *http.Client // nil: a plain client
	token   string       // bearer token; empty: none
}

func (p *etagPoller) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.poll(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("agent: poll failed; trying again later", "what", p.what, "url", netconf.Redact(p.url), "err", err)
		}
		sleepCtx(ctx, p.every, nil)
	}
}

func (p *etagPoller) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	client := p.client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", netconf.Redact(p.url), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.maxSize+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", netconf.Redact(p.url), err)
	}
	if int64(len(body)) > p.maxSize {
		// Refused whole, never cut short: a truncated document would be
		// taken for another (a channel's id is the hash of its bytes).
		return fmt.Errorf("GET %s: the %s is larger than %d bytes; refused", p.url, p.what, p.maxSize)
	}
	if err := p.handle(body); err != nil {
		return err
	}
	p.etag = resp.Header.Get("ETag")
	return nil
}
