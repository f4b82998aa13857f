package report

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/modelslot/modelslot/internal/netconf"
)

// HTTPSink POSTs each event as one JSON object; any 2xx answer acknowledges it.
type HTTPSink struct {
	URL    string
	token  string
	client *retryablehttp.Client
}

// HTTPOptions say how to reach the platform over HTTP(S).
type HTTPOptions struct {
	TLS   *tls.Config // CAs (and client certificate); nil: the system's roots
	Token string      // sent as "Authorization: Bearer …"; empty: none
}

// NewHTTPSink returns a sink for url. Retries inside one Send are few and quick;
// the Drainer's backoff handles long outages.
func NewHTTPSink(url string, o HTTPOptions) *HTTPSink {
	c := retryablehttp.NewClient()
	c.RetryMax = 2
	c.RetryWaitMin, c.RetryWaitMax = 200*time.Millisecond, 2*time.Second
	c.HTTPClient.Timeout = 15 * time.Second
	if o.TLS != nil {
		c.HTTPClient.Transport.(*http.Transport).TLSClientConfig = o.TLS
	}
	c.Logger = slogAdapter{}
	return &HTTPSink{URL: url, token: o.Token, client: c}
}

// Name is the cursor name of the HTTP sink.
func (s *HTTPSink) Name() string { return SinkHTTP }

// Send posts events one by one, in order, and stops at the first that fails.
func (s *HTTPSink) Send(ctx context.Context, events []*Event) (int, error) {
	for i, ev := range events {
		if err := s.post(ctx, ev); err != nil {
			return i, err
		}
	}
	return len(events), nil
}

func (s *HTTPSink) post(ctx context.Context, ev *Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("http sink %s: %w", netconf.Redact(s.URL), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", ev.EventID)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("http sink: post event %d: %w", ev.Sequence, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http sink: post event %d: %s", ev.Sequence, resp.Status)
	}
	return nil
}

// slogAdapter routes retryablehttp's messages to slog at debug level: the
// Drainer already logs every failed attempt once.
type slogAdapter struct{}

func (slogAdapter) Error(msg string, kv ...any) { slog.Debug(msg, kv...) }
func (slogAdapter) Info(msg string, kv ...any)  { slog.Debug(msg, kv...) }
func (slogAdapter) Debug(msg string, kv ...any) { slog.Debug(msg, kv...) }
func (slogAdapter) Warn(msg string, kv ...any)  { slog.Debug(msg, kv...) }
