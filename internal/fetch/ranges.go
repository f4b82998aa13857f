package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
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
	if p.FetchChunks == 0 {
		newReporter(o.Progress, 0)
		return nil // nothing to fetch, and no locations were brought for it
	}
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
	workers := max(o.Workers, 1)
	for range workers {
		wg.Go(func() {
			w, err := newChunkWriter(sf, jf, workers)
			if err != nil {
				fail(permanent(err))
				return
			}
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
	body, whole, err := f.c.getRange(ctx, f.url, int64(start), int64(f.r.end), f.fresh)
	if err != nil {
		return err
	}
	defer body.Close()
	if whole && start != 0 {
		return permanent(fmt.Errorf("%w: %w: asked for bytes=%d-%d, it answered the whole file (HTTP 200); serve the repository from a server with Range support",
			ErrDownload, ErrNoRange, start, f.r.end-1))
	}
	// From offset 0 a whole file starts with the run: it is read as far as the run needs.
	err = f.stream(body, start)
	f.w.flush() // what was verified is written and journaled before any retry
	if f.fresh = errors.Is(err, ErrCorrupt); f.fresh && f.c.corrupt != nil {
		f.c.corrupt() // counted like a corrupt chunk of schema 1
	}
	return err
}

// stream reads the run's chunks from the response body at pack offset pos.
func (f *runFetch) stream(body io.Reader, pos uint64) error {
	for ; f.next < len(f.r.chunks); f.next++ {
		ch := f.r.chunks[f.next]
		if gap := int64(ch.off - pos); gap > 0 {
			if _, err := io.CopyN(io.Discard, body, gap); err != nil {
				return shortBody(ch.off, err)
			}
			f.report.add(gap) // a gap read through: bytes on the wire too
		}
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
	dst, err := f.w.slot(ch.file, ch.foff, int(ch.size))
	if err != nil {
		return permanent(err)
	}
	// Decoded in place, in the writer's block; a chunk that fails its check
	// is not added to the block, and the next one is decoded over it.
	data, err := decodeStored(z, vc, dst)
	if err != nil {
		return fmt.Errorf("pack bytes %d-%d: %w", ch.off, ch.off+uint64(ch.csize)-1, err) // ErrCorrupt
	}
	if len(data) > 0 && &data[0] != &dst[:1][0] { // never with the decoder's cap limit
		copy(dst[:len(data)], data)
	}
	f.w.done(ch.ord, len(data)) // the writer journals the chunk once written
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
		o, err := x.w.open(fileRel(f), os.O_RDWR)
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
