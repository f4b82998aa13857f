package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// decoder is shared: DecodeAll is safe for concurrent use and decodes straight
// into the caller's buffer, so no window buffer is held per chunk in flight.
var decoder = func() *zstd.Decoder {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(DefaultWorkers),
		zstd.WithDecoderLowmem(true),
		// Every chunk's sha256 is checked after decoding: the frame's own
		// xxhash would only check the same bytes again, less strongly.
		zstd.IgnoreChecksum(true),
		// Output never grows past the buffer it is given (the declared size),
		// so a zstd bomb stops there instead of filling memory.
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxWindow(2*verify.MaxChunkSize),
		zstd.WithDecoderMaxMemory(2*verify.MaxChunkSize))
	if err != nil {
		panic(fmt.Sprintf("fetch: zstd decoder: %v", err))
	}
	return d
}()

// bufs recycles chunk-sized buffers: with a handful of chunks in flight, the
// same few buffers serve a whole install and memory stays flat.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

func getBuf(n int64) []byte {
	b := *bufs.Get().(*[]byte)
	if int64(cap(b)) < n {
		b = make([]byte, 0, n)
	}
	return b[:0]
}

func putBuf(b []byte) { bufs.Put(&b) }

// decodeChunk decompresses z into dst (reused) and checks the result against c:
// exactly c.Size bytes — output is capped there, so a zstd bomb costs no more —
// and the sha256 c names. Every failure wraps ErrCorrupt.
func decodeChunk(z []byte, c verify.Chunk, dst []byte) ([]byte, error) {
	if err := checkFrameSize(z, c); err != nil {
		return nil, err
	}
	if int64(cap(dst)) < c.Size {
		dst = make([]byte, 0, c.Size)
	}
	out, err := decoder.DecodeAll(z, dst[:0:c.Size])
	switch {
	case err != nil:
		// With no size in the frame header, running out of room is how a bomb
		// shows; the decoder cannot tell it from corruption.
		return nil, corruptf("chunk %s is corrupt or decompresses to more than the %d bytes the manifest declares (stopped there): %v", c.SHA256, c.Size, err)
	case int64(len(out)) != c.Size:
		return nil, corruptf("chunk %s decompresses to %d bytes, the manifest declares %d", c.SHA256, len(out), c.Size)
	}
	if err := checkSum(out, c); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeStored is decodeChunk for a chunk of a pack, which is stored plain
// where zstd did not make it smaller (chunkindex.Plain): its bytes are then
// copied into dst and checked, with no decoding.
func decodeStored(z []byte, c verify.Chunk, dst []byte) ([]byte, error) {
	if !chunkindex.Plain(uint32(len(z)), uint32(c.Size)) {
		return decodeChunk(z, c, dst)
	}
	out := append(dst[:0], z...)
	if err := checkSum(out, c); err != nil {
		return nil, err
	}
	return out, nil
}

// checkFrameSize compares the size a zstd frame header declares, if any, with
// the manifest's, before a byte is decoded.
func checkFrameSize(z []byte, c verify.Chunk) error {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return corruptf("chunk %s is corrupt: not a zstd frame: %v", c.SHA256, err)
	}
	switch {
	case !h.HasFCS || h.FrameContentSize == uint64(c.Size):
		return nil
	case h.FrameContentSize > uint64(c.Size):
		return corruptf("chunk %s decompresses to more than the %d bytes the manifest declares (its header says %d; not decoded)", c.SHA256, c.Size, h.FrameContentSize)
	}
	return corruptf("chunk %s decompresses to %d bytes, the manifest declares %d", c.SHA256, h.FrameContentSize, c.Size)
}

// corruptf is an error about bytes that do not match the manifest.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func checkSum(data []byte, c verify.Chunk) error {
	h := verify.NewHash()
	h.Write(data)
	if got := verify.HexDigest(h.Sum(nil)); got != c.SHA256 {
		return corruptf("chunk %s: its bytes hash to %s: the source sent other content (corrupt, or another chunk under this address)", c.SHA256, got)
	}
	return nil
}

// stageChunk decodes a chunk's compressed bytes, verifies them and writes them
// to their places in staging, recycling the buffer.
func (p *Plan) stageChunk(z []byte, c verify.Chunk) error {
	plain := getBuf(c.Size)
	defer putBuf(plain)
	data, err := decodeChunk(z, c, plain)
	if err != nil {
		return err
	}
	return p.stage(c, data)
}

// corruptRetries is how many times a chunk whose bytes fail their digest or
// size is fetched again: a captive portal or a broken proxy answers the same
// way for a while, so a few tries with backoff, and then the agent's own
// retry later, serve better than many quick ones.
const corruptRetries = 3

// fetchChunk downloads chunk ch from the repository at repoURL into staging.
// The manifest was verified before: bytes that do not match it are the
// transport's fault, so the chunk is fetched again (with backoff, past any
// cache) and, if it stays bad, the error is a download failure.
func (c *Client) fetchChunk(ctx context.Context, repoURL string, p *Plan, ch verify.Chunk) error {
	url := joinURL(repoURL, verify.ChunkPath(ch.SHA256))
	for attempt := 0; ; attempt++ {
		err := c.fetchChunkOnce(ctx, url, p, ch, attempt > 0)
		if err == nil || !errors.Is(err, ErrCorrupt) || ctx.Err() != nil {
			return err
		}
		if c.corrupt != nil {
			c.corrupt()
		}
		if attempt == corruptRetries {
			return fmt.Errorf("%w: %w (fetched %d times; a captive portal, a proxy or the mirror sends other bytes than the repository published)",
				ErrDownload, err, attempt+1)
		}
		c.noteRetry(url, err.Error())
		wait := retryablehttp.DefaultBackoff(c.retryMin, c.retryMax, attempt, nil)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("get %s: %w", url, ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) fetchChunkOnce(ctx context.Context, url string, p *Plan, ch verify.Chunk, again bool) error {
	z, err := c.get(ctx, url, ch.CSize, true, again)
	if err != nil {
		return err
	}
	defer putBuf(z)
	if err := p.stageChunk(z, ch); err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	return nil
}

// readChunkEntry reads a bundle entry of exactly c.CSize bytes.
func readChunkEntry(r io.Reader, c verify.Chunk) ([]byte, error) {
	z := getBuf(c.CSize)[:c.CSize]
	if _, err := io.ReadFull(r, z); err != nil {
		putBuf(z)
		return nil, err
	}
	return z, nil
}
