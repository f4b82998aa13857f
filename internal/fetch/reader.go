package fetch

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/modelslot/modelslot/verify"
)

// fileReader yields one file's bytes chunk by chunk from the staging store and
// the active slot, verifying each chunk before its bytes are handed on. Memory
// is one buffer of the file's largest chunk.
type fileReader struct {
	ctx  context.Context
	p    *Plan
	f    verify.File
	next int    // index of the next chunk to load
	buf  []byte // the current chunk, verified
	pos  int    // read position in buf
}

func (p *Plan) newFileReader(ctx context.Context, f verify.File) *fileReader {
	var most int64
	for _, c := range f.Chunks {
		most = max(most, c.Size)
	}
	return &fileReader{ctx: ctx, p: p, f: f, buf: make([]byte, 0, most)}
}

func (r *fileReader) Read(b []byte) (int, error) {
	for r.pos == len(r.buf) {
		if r.next == len(r.f.Chunks) {
			return 0, io.EOF
		}
		if err := r.load(r.f.Chunks[r.next]); err != nil {
			return 0, err
		}
		r.next++
	}
	n := copy(b, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// load reads chunk c into buf and verifies it.
func (r *fileReader) load(c verify.Chunk) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	r.buf, r.pos = r.buf[:c.Size], 0
	if err := r.p.readChunk(c, r.buf); err != nil {
		return err
	}
	return nil
}

// writeChunkAt writes chunk c, verified, at off of out.
func (r *fileReader) writeChunkAt(out *os.File, off int64, c verify.Chunk) error {
	if err := r.load(c); err != nil {
		return err
	}
	_, err := out.WriteAt(r.buf, off)
	return err
}

func (r *fileReader) close() {}

// readChunk fills buf (len = c.Size) with chunk c from the active slot or the
// staging store and checks its digest. A staged chunk that fails is removed so
// the next attempt downloads it; an active-slot chunk that fails means the slot
// changed on disk.
func (p *Plan) readChunk(c verify.Chunk, buf []byte) error {
	if sr, ok := p.slot[c.SHA256]; ok {
		if err := readAt(sr.file, sr.off, buf); err != nil {
			return fmt.Errorf("reuse chunk %s from the active slot: %w", c.SHA256, err)
		}
		if err := checkSum(buf, c); err != nil {
			return fmt.Errorf("the active slot's %s no longer matches its manifest (run `modelslot verify`): %w", sr.file, err)
		}
		return nil
	}
	p.mu.Lock()
	staged := p.staged[c.SHA256]
	p.mu.Unlock()
	if !staged {
		return fmt.Errorf("chunk %s is not staged: download it first", c.SHA256)
	}
	if err := readAt(p.staging.path(c.SHA256), 0, buf); err != nil {
		return fmt.Errorf("staged chunk %s: %w", c.SHA256, err)
	}
	if err := checkSum(buf, c); err != nil {
		os.Remove(p.staging.path(c.SHA256))
		return fmt.Errorf("staged chunk %s changed on disk; removed, try again: %w", c.SHA256, err)
	}
	return nil
}

func readAt(name string, off int64, buf []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(buf, off)
	return err
}
