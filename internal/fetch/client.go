package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

// ClientOptions tune downloads. Zero values take the defaults in brackets.
type ClientOptions struct {
	Retries      int           // retries per request after the first try [5]
	RetryWaitMin time.Duration // first backoff [500ms]
	RetryWaitMax time.Duration // longest backoff [30s]
	StallTimeout time.Duration // no byte for this long fails the attempt [30s]
	// MinRate is the slowest a response body may come, in bytes per second
	// over each MinRateWindow (time waiting for the bandwidth limit does not
	// count): a server that trickles a byte at a time fails the attempt,
	// which resumes (Range) on retry [1024 over 60s].
	MinRate       int64
	MinRateWindow time.Duration
	// RequestTimeout bounds one attempt from its first byte to its last,
	// bandwidth waits excluded [30m].
	RequestTimeout time.Duration
	Bandwidth      int64 // bytes per second over all requests; 0 = unlimited
	// Corrupt, if set, is called each time the bytes received for a chunk
	// fail their digest or size (a metric counts them); the chunk is then
	// fetched again, up to 3 times.
	Corrupt func()
	Logger  *slog.Logger // [slog.Default()]
	TLS     *tls.Config  // an https repository's CAs (nil: the system's)
	// Token is sent as "Authorization: Bearer" to the host of the URL the
	// install was given, never to another host a redirect leads to.
	Token string
}

// Client downloads from a repository over HTTP(S). It is safe for concurrent use.
type Client struct {
	rc       *retryablehttp.Client
	stall    time.Duration
	pace     pace // the minimum rate and the deadline of one attempt
	retryMin time.Duration
	retryMax time.Duration
	corrupt  func()
	limiter  *limiter
	log      *slog.Logger
	token    string
	retried  atomic.Bool // the one line saying that downloads are retried was logged

	mu        sync.Mutex
	tokenHost string // the host the token is for: the one Resolve was given
}

// authorize adds the bearer token to a request for the repository's host.
// A redirect to another host does not carry it: net/http drops Authorization
// when it follows a redirect to a different domain.
func (c *Client) authorize(req *http.Request) {
	if c.token == "" {
		return
	}
	c.mu.Lock()
	host := c.tokenHost
	c.mu.Unlock()
	if host != "" && req.URL.Host == host {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// trustHost names the host the token goes to.
func (c *Client) trustHost(host string) {
	c.mu.Lock()
	c.tokenHost = host
	c.mu.Unlock()
}

// Defaults of ClientOptions, also [download]'s in the config.
const (
	// DefaultMinRate and DefaultMinRateWindow cut off a server that sends
	// less than 60 KiB a minute on a request: far below a poor mobile link,
	// far above a hostile trickle.
	DefaultMinRate       = 1 << 10
	DefaultMinRateWindow = 60 * time.Second
	// DefaultRequestTimeout lets even a 16 MiB chunk at 10 KiB/s finish.
	DefaultRequestTimeout = 30 * time.Minute
)

// NewClient returns a Client with o applied.
func NewClient(o ClientOptions) *Client {
	o = o.withDefaults()
	hc := cleanhttp.DefaultPooledClient()
	tr := hc.Transport.(*http.Transport)
	// A server that accepts the connection and then says nothing is a stall, not
	// a slow download: give up on it after StallTimeout. The body has its own
	// watchdog (stallReader), since a total timeout would fail a large chunk
	// under a bandwidth limit.
	tr.ResponseHeaderTimeout = o.StallTimeout
	if o.TLS != nil {
		tr.TLSClientConfig = o.TLS
	}
	tr.DialContext = (&net.Dialer{Timeout: o.StallTimeout, KeepAlive: 30 * time.Second}).DialContext
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       retryLog{o.Logger},
		RetryWaitMin: o.RetryWaitMin,
		RetryWaitMax: o.RetryWaitMax,
		RetryMax:     o.Retries,
		CheckRetry:   checkRetry,
		Backoff:      retryablehttp.DefaultBackoff,
		PrepareRetry: prepareRange,
		ErrorHandler: giveUp,
	}
	return &Client{rc: rc, stall: o.StallTimeout, limiter: newLimiter(o.Bandwidth), log: o.Logger, token: o.Token,
		pace:     pace{minRate: o.MinRate, window: o.MinRateWindow, deadline: o.RequestTimeout},
		retryMin: o.RetryWaitMin, retryMax: o.RetryWaitMax, corrupt: o.Corrupt}
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 500 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 30 * time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.MinRate <= 0 {
		o.MinRate = DefaultMinRate
	}
	if o.MinRateWindow <= 0 {
		o.MinRateWindow = DefaultMinRateWindow
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// permanentError marks an error that no retry can fix: the server sent bytes
// that are not what the manifest names, or bytes past a declared size.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// checkRetry is retryablehttp's policy plus two rules: a permanent error stops
// at once, and a 404 for a chunk is retried like a 5xx (a mirror or CDN edge
// may not have a fresh chunk yet) and then reported as ErrNotFound. A 404 for
// the channel or manifest URL itself is a final answer (download.handle).
// Why an attempt is retried is kept for the log line (Client.noteRetry).
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var perm *permanentError
	if errors.As(err, &perm) {
		return false, err
	}
	d, _ := ctx.Value(downloadKey{}).(*download)
	if err == nil && resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone) &&
		(d == nil || d.exact) {
		d.because("HTTP " + resp.Status)
		return true, fmt.Errorf("%w (HTTP %d)", ErrNotFound, resp.StatusCode)
	}
	retry, cerr := retryablehttp.ErrorPropagatedRetryPolicy(ctx, resp, err)
	if retry {
		switch {
		case err != nil:
			d.because(err.Error())
		case resp != nil:
			d.because("HTTP " + resp.Status)
		}
	}
	return retry, cerr
}

// giveUp is the error after the last attempt: the cause, and how many
// attempts it took, without retryablehttp's "GET <url> giving up" prefix (the
// caller names the URL).
func giveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	if resp != nil {
		resp.Body.Close()
	}
	if err == nil { // retried to the end on a status its policy gave no error for
		err = errors.New("no usable answer from the server")
		if resp != nil {
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
	}
	if attempts > 1 {
		return nil, fmt.Errorf("%w (%d attempts)", err, attempts)
	}
	return nil, err
}

// noteRetry logs that an attempt is retried: the first time for this client
// at INFO, saying why, and every time at DEBUG, so that a flaky network shows
// as one line before the result, not one warning per attempt.
func (c *Client) noteRetry(url, why string) {
	if c.retried.CompareAndSwap(false, true) {
		c.log.Info("download: retrying with backoff; further retries are logged at debug level", "url", url, "why", why)
		return
	}
	c.log.Debug("download: retrying", "url", url, "why", why)
}
