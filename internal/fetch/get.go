package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/modelslot/modelslot/verify"
)

// download is one GET that may take several attempts; buf keeps what earlier
// attempts received, so a retry asks only for the rest (HTTP Range).
type download struct {
	c     *Client
	ctx   context.Context
	url   string
	limit int64 // most bytes accepted
	exact bool  // the body must be exactly limit bytes (a chunk of known size)
	buf   []byte
	why   string // why the last attempt is retried, for the log
}

// because notes why the attempt is retried; prepareRange logs it.
func (d *download) because(why string) {
	if d != nil {
		d.why = why
	}
}

type downloadKey struct{}

// get downloads url. With exact, the body must be limit bytes (the buffer is
// from getBuf: give it back with putBuf); otherwise at most limit. Retries
// (with backoff, resuming by Range) follow checkRetry. With noCache, caches on
// the way are asked to fetch the file afresh (a copy received was corrupt).
func (c *Client) get(ctx context.Context, url string, limit int64, exact, noCache bool) ([]byte, error) {
	d := &download{c: c, ctx: ctx, url: url, limit: limit, exact: exact}
	if exact {
		d.buf = getBuf(limit + 1) // +1: room to see a body that is too long
	}
	req, err := retryablehttp.NewRequestWithContext(context.WithValue(ctx, downloadKey{}, d), http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	c.authorize(req.Request)
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	req.SetResponseHandler(d.handle)
	resp, err := c.rc.Do(req)
	if err == nil {
		resp.Body.Close()
		return d.buf, nil
	}
	if exact {
		putBuf(d.buf)
	}
	return nil, classify(ctx, url, err)
}

// prepareRange asks for the rest of a partly received body. It is the client's
// PrepareRetry, so it finds its download through the request's context.
func prepareRange(r *http.Request) error {
	d, _ := r.Context().Value(downloadKey{}).(*download)
	r.Header = r.Header.Clone()
	if d != nil {
		d.c.noteRetry(d.url, d.why)
	}
	if d == nil || len(d.buf) == 0 {
		r.Header.Del("Range")
		return nil
	}
	r.Header.Set("Range", "bytes="+strconv.Itoa(len(d.buf))+"-")
	return nil
}

func classify(ctx context.Context, url string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("get %s: %w", url, ctx.Err())
	case errors.Is(err, verify.ErrRejected), errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		return fmt.Errorf("get %s: %w", url, err)
	}
	return fmt.Errorf("get %s: %w: %w", url, ErrDownload, err)
}

// handle reads one response into d.buf. Its error decides, through checkRetry,
// whether retryablehttp tries again.
func (d *download) handle(resp *http.Response) error {
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		d.buf = d.buf[:0] // the server ignored Range (or none was sent)
	case http.StatusPartialContent:
		if !strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.Itoa(len(d.buf))+"-") {
			d.buf = d.buf[:0]
			return fmt.Errorf("server answered range %q, not the one asked for; starting again", resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		return permanent(corruptf("%s is shorter than the %d bytes the manifest declares", d.url, d.limit))
	case http.StatusNotFound, http.StatusGone:
		// Only the URL that was given gets here (checkRetry retries a chunk's
		// 404): a mistyped model or channel name, or a version never published.
		return permanent(fmt.Errorf("%w: HTTP %s; check the URL (the repository, model and channel or version names)", ErrNotFound, resp.Status))
	default:
		return permanent(fmt.Errorf("%w: HTTP %s", ErrDownload, resp.Status))
	}
	return d.read(resp.Body)
}

// read appends the body to d.buf, enforcing the size rules, the bandwidth
// limit (charged for the bytes read), the stall timeout, the minimum rate and
// the deadline of the attempt.
func (d *download) read(body io.ReadCloser) error {
	var stalled atomic.Bool
	watchdog := time.AfterFunc(d.c.stall, func() { stalled.Store(true); body.Close() })
	defer watchdog.Stop()
	pace := d.c.pace.start(time.Now())
	for {
		if err := d.grow(); err != nil {
			return err
		}
		want := d.c.limiter.readSize(cap(d.buf) - len(d.buf))
		watchdog.Reset(d.c.stall)
		n, err := body.Read(d.buf[len(d.buf) : len(d.buf)+want])
		watchdog.Stop() // a wait for the bandwidth limit is not a stall
		d.buf = d.buf[:len(d.buf)+n]
		if int64(len(d.buf)) > d.limit {
			if d.exact {
				return permanent(corruptf("%s is larger than the %d bytes the manifest declares", d.url, d.limit))
			}
			return permanent(rejectf("%s is larger than the %d bytes allowed", d.url, d.limit))
		}
		waited, werr := d.c.limiter.wait(d.ctx, n)
		if werr != nil {
			return werr
		}
		switch {
		case stalled.Load():
			return fmt.Errorf("no data for %s: the server stalled", d.c.stall)
		case errors.Is(err, io.EOF):
			return d.atEOF()
		case err != nil:
			return err // a reset or a dropped connection: retry, resuming from here
		}
		if err := pace.add(time.Now(), n, waited); err != nil {
			return err // retried, resuming (Range) from what arrived
		}
	}
}

// grow makes room for the next read; one byte past limit is allowed so that an
// oversized body is seen as such.
func (d *download) grow() error {
	if len(d.buf) < cap(d.buf) {
		return nil
	}
	next := min(max(2*cap(d.buf), 64<<10), int(d.limit)+1)
	if next <= len(d.buf) {
		next = len(d.buf) + 1
	}
	nb := make([]byte, len(d.buf), next)
	copy(nb, d.buf)
	d.buf = nb
	return nil
}

func (d *download) atEOF() error {
	if d.exact && int64(len(d.buf)) != d.limit {
		// A clean end of body short of the size: the server's copy is short.
		return permanent(corruptf("truncated: %s has %d bytes, the manifest declares %d", d.url, len(d.buf), d.limit))
	}
	return nil
}

func rejectf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{verify.ErrRejected}, args...)...)
}
