package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
	"golang.org/x/sys/unix"
)

// A schema-2 repository keeps chunks in packs, so a device asks for a run of
// the chunks it misses with one HTTP Range request. These bound a run.
const (
	// MaxRangeBytes caps one request, so a full install still runs several
	// requests at once (and a retry repeats little).
	MaxRangeBytes = 16 << 20
	// maxGap is how many bytes of chunks not needed are read through rather
	// than ending a run: on a link of 10 MB/s and 30 ms round trips, another
	// request costs about as much as 300 KB.
	maxGap = 256 << 10
	// maxRunChunks bounds a run's list (64 bytes an entry), for chunks that
	// compress to almost nothing.
	maxRunChunks = 4096
)

// rangeCap is MaxRangeBytes; tests lower it to see runs split.
var rangeCap uint64 = MaxRangeBytes

// ErrNoRange: the server answered a Range request for the middle of a pack
// with the whole file (HTTP 200). A repository of packs needs a server with
// Range support (every common web server, CDN and object store has it); a
// device does not download whole packs to find the chunks it misses.
var ErrNoRange = errors.New("the server ignores HTTP Range requests")

// run is chunks adjacent (or nearly) in one pack, fetched by one request.
type run struct {
	pack       chunkindex.Digest
	start, end uint64 // pack byte range [start, end)
	chunks     []runChunk
}

type runChunk struct {
	sum         chunkindex.Digest
	off         uint64 // in the pack
	csize, size uint32
	ord         int64
	file        int
	foff        int64
}

// runs groups the plan's entries to fetch into runs, in index order, calling
// emit for each one complete.
type runs struct {
	packs []chunkindex.Digest
	cur   *run
	emit  func(*run) error
}

func (b *runs) add(e *entry) error {
	off, end := e.loc.Offset, e.loc.Offset+uint64(e.loc.CSize)
	pack := b.packs[e.loc.Pack]
	if r := b.cur; r != nil && (pack != r.pack || off < r.end || off-r.end > maxGap ||
		end-r.start > rangeCap || len(r.chunks) >= maxRunChunks) {
		if err := b.flush(); err != nil {
			return err
		}
	}
	if b.cur == nil {
		b.cur = &run{pack: pack, start: off}
	}
	b.cur.chunks = append(b.cur.chunks, runChunk{sum: e.Sum, off: off, csize: e.loc.CSize, size: e.Size,
		ord: e.Ordinal, file: e.File, foff: e.Offset})
	b.cur.end = end
	return nil
}

func (b *runs) flush() error {
	if b.cur == nil {
		return nil
	}
	r := b.cur
	b.cur = nil
	return b.emit(r)
}

// downloadIndexed fetches a schema-2 plan's chunks: runs of adjacent chunks
// with one Range request each, o.Workers at once, every frame decompressed,
// hashed and written to its place in staging as the response streams in.
func (c *Client) downloadIndexed(ctx context.Context, repoURL string, p *Plan, o DownloadOptions) error {
	x := p.ix
	packs, err := x.packs()
	if err != nil {
		return err
	}
	out, err := x.openStaged()
	if err != nil {
		return err
	}
	defer closeAll(out)
	sf := openDirect(out)
	defer sf.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	report := newReporter(o.Progress, p.FetchBytes)
	jobs := make(chan *run)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		first = preferReal(first, err)
		mu.Unlock()
		cancel()
	}
	// One journal for all writers: each line is one O_APPEND write.
	jf, err := x.w.openJournal()
	if err != nil {
		return err
	}
	defer jf.Close()
	for range max(o.Workers, 1) {
		wg.Go(func() {
			w := newChunkWriter(sf, jf)
			for r := range jobs {
				if err := c.fetchRun(ctx, repoURL, w, r, report); err != nil {
					fail(err)
				}
			}
			if err := w.close(); err != nil {
				fail(permanent(err))
			}
		})
	}
	send := func(r *run) error {
		select {
		case jobs <- r:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := &runs{packs: packs, emit: send}
	err = x.walk(ctx, true, func(e *entry) error {
		if x.kind[e.Ordinal] != kFetch {
			return nil
		}
		return b.add(e)
	})
	if err == nil {
		err = b.flush()
	}
	close(jobs)
	wg.Wait()
	if first == nil && err != nil {
		first = err
	}
	return first
}

// fetchRun downloads one run, retrying with backoff; a retry asks only for
// the chunks not yet written. What was written is journaled either way.
func (c *Client) fetchRun(ctx context.Context, repoURL string, w *chunkWriter, r *run, report *reporter) error {
	url := joinURL(repoURL, chunkindex.PackPath(r.pack))
	f := &runFetch{c: c, w: w, r: r, url: url, report: report}
	return c.retry(ctx, url, f.try)
}

// runFetch is one run's progress across attempts.
type runFetch struct {
	c      *Client
	w      *chunkWriter // writes and journals each chunk handed to it
	r      *run
	url    string
	report *reporter
	next   int  // first chunk handed to the writer
	fresh  bool // the last attempt got corrupt bytes: ask past any cache
}

func (f *runFetch) try(ctx context.Context) error {
	start := f.r.chunks[f.next].off
	want := fmt.Sprintf("bytes=%d-%d", start, f.r.end-1)
	resp, err := f.c.request(ctx, f.url, want, f.fresh)
	if err != nil {
		return err
	}
	body := f.c.watch(ctx, resp.Body)
	defer body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if err := checkRange(resp.Header.Get("Content-Range"), start, f.r.end); err != nil {
			return fmt.Errorf("asked for %s: %w", want, err)
		}
	case http.StatusOK:
		if start != 0 {
			return permanent(fmt.Errorf("%w: %w: asked for %s, it answered the whole file (HTTP 200); serve the repository from a server with Range support",
				ErrDownload, ErrNoRange, want))
		}
		// From offset 0 the whole file starts with the run: read what it needs.
	default:
		return statusError(resp)
	}
	err = f.stream(body, start)
	if f.fresh = errors.Is(err, ErrCorrupt); f.fresh && f.c.corrupt != nil {
		f.c.corrupt() // counted like a corrupt chunk of schema 1
	}
	return err
}

// stream reads the run's chunks from the response body at pack offset pos.
func (f *runFetch) stream(body io.Reader, pos uint64) error {
	for ; f.next < len(f.r.chunks); f.next++ {
		ch := f.r.chunks[f.next]
		if _, err := io.CopyN(io.Discard, body, int64(ch.off-pos)); err != nil {
			return shortBody(ch.off, err)
		}
		f.report.add(int64(ch.off - pos)) // a gap read through: bytes on the wire too
		z := getBuf(int64(ch.csize))[:ch.csize]
		_, err := io.ReadFull(body, z)
		if err == nil {
			err = f.place(z, ch)
		} else {
			err = shortBody(ch.off, err)
		}
		putBuf(z)
		if err != nil {
			return err
		}
		pos = ch.off + uint64(ch.csize)
		f.report.add(int64(ch.csize))
	}
	return nil
}

// place decodes, checks and writes one chunk. A frame that fails is a
// transport failure here (the pack's bytes and the locations are unsigned;
// the digest the index pins is what counts), so it is retried.
func (f *runFetch) place(z []byte, ch runChunk) error {
	vc := verify.Chunk{SHA256: ch.sum.String(), Size: int64(ch.size), CSize: int64(ch.csize)}
	plain := getBuf(vc.Size)
	data, err := decodeChunk(z, vc, plain)
	if err != nil {
		putBuf(plain)
		return fmt.Errorf("pack bytes %d-%d: %w", ch.off, ch.off+uint64(ch.csize)-1, err) // ErrCorrupt
	}
	// The writer owns the buffer now, and journals the chunk once written.
	if err := f.w.put(wchunk{file: ch.file, off: ch.foff, data: data, ord: ch.ord}); err != nil {
		return permanent(err)
	}
	return nil
}

func shortBody(at uint64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the response ended before pack byte %d (truncated)", at)
	}
	return err
}

// checkRange checks a Content-Range header against the range [first, end)
// asked for. A pack shorter than its locations say answers a shorter range.
func checkRange(h string, first, end uint64) error {
	var a, b, total uint64
	if n, _ := fmt.Sscanf(h, "bytes %d-%d/%d", &a, &b, &total); n == 3 && a == first && b+1 < end && total == b+1 {
		return fmt.Errorf("the pack on the server has %d bytes, shorter than its locations say (%d): truncated, or another file under its name", total, end)
	}
	if n, _ := fmt.Sscanf(h, "bytes %d-%d/", &a, &b); n != 2 || a != first || b+1 != end {
		return fmt.Errorf("the server answered Content-Range %q", h)
	}
	return nil
}

// statusError turns an HTTP status into a retryable error or a final one.
func statusError(resp *http.Response) error {
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound || code == http.StatusGone:
		return fmt.Errorf("%w (HTTP %d): the repository is incomplete or a mirror is behind", ErrNotFound, code)
	case code == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("the file is shorter than its locations say (HTTP 416)")
	case code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return permanent(fmt.Errorf("%w: HTTP %s", ErrDownload, resp.Status))
}

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

// getFile downloads url into the file name (replacing it), refusing a body
// larger than limit; check, if not nil, judges the file, and its error is
// retried like a transport failure. It retries from the start: the files it
// is for (an index, locations) are small next to the model.
func (c *Client) getFile(ctx context.Context, url, name string, limit int64, check func(string) error) error {
	return c.retry(ctx, url, func(ctx context.Context) error {
		resp, err := c.request(ctx, url, "", false)
		if err != nil {
			return err
		}
		body := c.watch(ctx, resp.Body)
		defer body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		out, err := os.Create(name)
		if err != nil {
			return permanent(fmt.Errorf("staging: %w", err))
		}
		n, err := io.Copy(out, io.LimitReader(body, limit+1))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n > limit {
			err = fmt.Errorf("larger than the %d bytes allowed", limit)
		}
		if err == nil && check != nil {
			err = check(name)
		}
		return err
	})
}

// loadIndex downloads the index the manifest pins (unless staging has it
// already, intact) and the repository's locations into the work directory.
func (c *Client) loadIndex(ctx context.Context, repoURL string, m *verify.Manifest, w *work) error {
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	idx := w.path(IndexFile)
	if checkIndexFile(idx, m.Index) != nil {
		part := idx + ".part"
		url := joinURL(repoURL, chunkindex.IndexPath(m.Index.SHA256))
		// Other bytes (a captive portal, a bad mirror) are tried again.
		check := func(name string) error { return checkIndexFile(name, m.Index) }
		if err := c.getFile(ctx, url, part, m.Index.Size, check); err != nil {
			return fmt.Errorf("chunk index: %w", err)
		}
		if err := os.Rename(part, idx); err != nil {
			return fmt.Errorf("staging: %w", err)
		}
	}
	limit := locLimit(m)
	url := joinURL(repoURL, chunkindex.LocationsPath(m.Index.SHA256))
	if err := c.getFile(ctx, url, w.path(locFile), limit, nil); err != nil {
		return fmt.Errorf("chunk locations: %w", err)
	}
	return nil
}

// locLimit bounds a repository's locations for m: a pack a chunk at most.
func locLimit(m *verify.Manifest) int64 {
	n := int(m.Index.Chunks)
	return chunkindex.LocationsSize(min(n, chunkindex.MaxPacks), n)
}

// indexSpace refuses, before a byte is written, an index and locations the
// staging filesystem cannot hold (the index may be hundreds of MB).
func indexSpace(dir string, m *verify.Manifest) error {
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	return enough(dir, avail(&st), m.Index.Size+locLimit(m)+DefaultMargin, "the chunk index and its locations")
}

// openStaged creates (keeping what an earlier attempt wrote) and opens the
// staged file of every file not reused whole; nil for the others.
func (x *indexed) openStaged() ([]*os.File, error) {
	out := make([]*os.File, len(x.m.Files))
	for i, f := range x.m.Files {
		if x.whole[i] >= 0 {
			continue
		}
		if err := x.w.prepare(f); err != nil {
			closeAll(out)
			return nil, err
		}
		o, err := os.OpenFile(x.w.file(f), os.O_RDWR, 0)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("staging: %w", err)
		}
		out[i] = o
	}
	return out, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
