package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/verify"
)

// decoders are reused: a zstd decoder is costly to make and holds its window.
var decoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1), // parallelism is across chunks
		zstd.WithDecoderLowmem(true),
		// A hostile frame may declare a huge window or size; no chunk needs more.
		zstd.WithDecoderMaxWindow(2*verify.MaxChunkSize),
		zstd.WithDecoderMaxMemory(2*verify.MaxChunkSize))
	if err != nil {
		panic(fmt.Sprintf("fetch: zstd decoder: %v", err))
	}
	return d
}}

// decodeChunk decompresses z and checks the result against c: exactly c.Size
// bytes — decoding stops one byte past it, so a zstd bomb costs no more than
// that — and the sha256 c names. Every failure is a rejection.
func decodeChunk(z io.Reader, c verify.Chunk) ([]byte, error) {
	dec := decoders.Get().(*zstd.Decoder)
	defer decoders.Put(dec)
	if err := dec.Reset(z); err != nil {
		return nil, rejectf("chunk %s: not zstd: %v", c.SHA256, err)
	}
	defer dec.Reset(nil) // drop the reference to z
	buf := make([]byte, c.Size+1)
	n, err := io.ReadFull(dec, buf)
	switch {
	case n > int(c.Size):
		return nil, rejectf("chunk %s decompresses to more than the %d bytes the manifest declares (stopped there)", c.SHA256, c.Size)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if n != int(c.Size) {
			return nil, rejectf("chunk %s decompresses to %d bytes, the manifest declares %d", c.SHA256, n, c.Size)
		}
	case err != nil:
		return nil, rejectf("chunk %s is corrupt: %v", c.SHA256, err)
	}
	data := buf[:n]
	if err := checkSum(data, c); err != nil {
		return nil, err
	}
	return data, nil
}

func checkSum(data []byte, c verify.Chunk) error {
	h := verify.NewHash()
	h.Write(data)
	if got := verify.HexDigest(h.Sum(nil)); got != c.SHA256 {
		return rejectf("chunk %s: its bytes hash to %s: the source sent other content (corrupt, or another chunk under this address)", c.SHA256, got)
	}
	return nil
}

// FetchChunk downloads one chunk from the repository at repoURL and returns its
// verified, uncompressed bytes.
func (c *Client) FetchChunk(ctx context.Context, repoURL string, ch verify.Chunk) ([]byte, error) {
	url := joinURL(repoURL, verify.ChunkPath(ch.SHA256))
	z, err := c.get(ctx, url, ch.CSize, true)
	if err != nil {
		return nil, err
	}
	data, err := decodeChunk(bytes.NewReader(z), ch)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	return data, nil
}
