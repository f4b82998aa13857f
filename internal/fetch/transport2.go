package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// The HTTP side of a schema-2 download: one request through the client's
// pool and token, retried with its backoff, its body under its pace.

// request sends one GET (with a Range header unless rng is empty), through
// the client's connection pool, timeouts and bearer token.
func (c *Client) request(ctx context.Context, url, rng string, noCache bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, permanent(fmt.Errorf("get %s: %w", url, err))
	}
	c.authorize(req)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	return c.rc.HTTPClient.Do(req)
}

// getRange asks url for bytes [start, end) and checks the answer: a 206 must
// carry exactly that Content-Range; a 200 (a server that ignores Range) is
// the whole file from byte 0, and whole says so, for the caller to take or
// refuse. The body is watched (min rate, deadline); the caller closes it.
func (c *Client) getRange(ctx context.Context, url string, start, end int64, noCache bool) (body io.ReadCloser, whole bool, err error) {
	want := fmt.Sprintf("bytes=%d-%d", start, end-1)
	resp, err := c.request(ctx, url, want, noCache)
	if err != nil {
		return nil, false, err
	}
	w := c.watch(ctx, resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return w, true, nil
	case http.StatusPartialContent:
		if err := checkRange(resp.Header.Get("Content-Range"), uint64(start), uint64(end)); err != nil {
			w.Close()
			return nil, false, fmt.Errorf("asked for %s: %w", want, err)
		}
		return w, false, nil
	}
	w.Close()
	return nil, false, statusError(resp)
}

// retry runs try until it succeeds, fails permanently, or the client's
// retries are spent, with the client's backoff between attempts. A retry is
// a DEBUG line; the final error names what failed.
func (c *Client) retry(ctx context.Context, what string, try func(context.Context) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		if err = try(ctx); err == nil {
			return nil
		}
		var perm *permanentError
		if ctx.Err() != nil {
			return fmt.Errorf("get %s: %w", what, ctx.Err())
		}
		if errors.As(err, &perm) || attempt >= c.rc.RetryMax {
			break
		}
		c.noteRetry(what, err.Error())
		t := time.NewTimer(retryablehttp.DefaultBackoff(c.retryMin, c.retryMax, attempt, nil))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("get %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	var perm *permanentError
	switch {
	case errors.As(err, &perm), errors.Is(err, ErrNotFound), errors.Is(err, ErrDownload):
		return fmt.Errorf("get %s: %w", what, err)
	}
	// Bytes that fail their digest under a valid signed manifest (ErrCorrupt),
	// a short or mislabelled answer: the transport failed, not the artifact.
	return fmt.Errorf("get %s: %w: %w", what, ErrDownload, err)
}

// watched is a response body under the stall timer, the minimum rate and
// the attempt's deadline (the client's pace) and the bandwidth limiter,
// which is charged the bytes actually read.
type watched struct {
	ctx     context.Context
	c       *Client
	rc      io.ReadCloser
	timer   *time.Timer
	pace    *attemptPace
	stalled atomic.Bool
}

func (c *Client) watch(ctx context.Context, rc io.ReadCloser) *watched {
	w := &watched{ctx: ctx, c: c, rc: rc, pace: c.pace.start(time.Now())}
	w.timer = time.AfterFunc(c.stall, func() { w.stalled.Store(true); rc.Close() })
	return w
}

func (w *watched) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:w.c.limiter.readSize(len(p))]
	w.timer.Reset(w.c.stall)
	n, err := w.rc.Read(p)
	w.timer.Stop() // a wait for the bandwidth limit is not a stall
	if w.stalled.Load() {
		return n, fmt.Errorf("no data for %s: the server stalled", w.c.stall)
	}
	waited, lerr := w.c.limiter.wait(w.ctx, n)
	if lerr != nil {
		return n, lerr
	}
	if perr := w.pace.add(time.Now(), n, waited); perr != nil {
		return n, perr // retried, asking for what is missing
	}
	return n, err
}

func (w *watched) Close() error {
	w.timer.Stop()
	return w.rc.Close()
}
