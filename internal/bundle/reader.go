package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/modelslot/modelslot/verify"
)

// Reader reads a bundle as a stream: the verified manifest first, then chunks.
type Reader struct {
	Manifest *verify.Manifest
	Envelope []byte // the signed manifest, as carried

	tr    *tar.Reader
	order []verify.Chunk
	next  int
	step  int // format 2: entries read after the envelope
}

// NewReader reads the bundle's envelope from r and verifies it against trusted.
// Nothing of r past the envelope is read until Next is called.
func NewReader(r io.Reader, trusted verify.Keyring) (*Reader, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, truncated("before its manifest", err)
	}
	if hdr.Name != EnvelopeName || hdr.Typeflag != tar.TypeReg {
		return nil, rejectf("first entry is %q, want %s: not a modelslot bundle", hdr.Name, EnvelopeName)
	}
	if hdr.Size > verify.MaxEnvelopeSize {
		return nil, rejectf("manifest entry is %d bytes, more than the %d allowed", hdr.Size, verify.MaxEnvelopeSize)
	}
	env := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, env); err != nil {
		return nil, truncated("inside its manifest", err)
	}
	m, err := verify.OpenManifest(env, trusted)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &Reader{Manifest: m, Envelope: env, tr: tr, order: m.DistinctChunks()}, nil
}

// Remaining is the number of chunks not yet returned by Next.
func (r *Reader) Remaining() int { return len(r.order) - r.next }

// Next returns the next chunk's manifest entry and a reader of its compressed
// bytes, valid until the following call. After the last chunk it returns io.EOF.
// The caller verifies the bytes (they are only as good as their digest).
func (r *Reader) Next() (verify.Chunk, io.Reader, error) {
	if r.Manifest.Index != nil {
		return verify.Chunk{}, nil, fmt.Errorf("bundle: internal error: Next on a format-2 bundle (use Index, Locations, Pack)")
	}
	if r.next == len(r.order) {
		return verify.Chunk{}, nil, io.EOF
	}
	want := r.order[r.next]
	hdr, err := r.tr.Next()
	if err != nil {
		return verify.Chunk{}, nil, truncated(fmt.Sprintf("after %d of %d chunks", r.next, len(r.order)), err)
	}
	if hdr.Name != ChunkName(want.SHA256) || hdr.Typeflag != tar.TypeReg {
		return verify.Chunk{}, nil, rejectf("entry %d is %q, the manifest's next chunk is %s", r.next+1, hdr.Name, want.SHA256)
	}
	if hdr.Size != want.CSize {
		return verify.Chunk{}, nil, rejectf("chunk %s is %d bytes, the manifest says %d", want.SHA256, hdr.Size, want.CSize)
	}
	r.next++
	return want, &truncReader{r: r.tr, what: want.SHA256}, nil
}

// truncReader turns a short read inside an entry into a rejection naming it.
type truncReader struct {
	r    io.Reader
	what string
}

func (t *truncReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = truncated("inside chunk "+t.what, err)
	}
	return n, err
}

func truncated(where string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return rejectf("bundle truncated %s: the file or stream ended early; copy it again", where)
	}
	return fmt.Errorf("bundle: read %s: %w", where, err)
}

func rejectf(format string, args ...any) error {
	return fmt.Errorf("bundle: %w: "+format, append([]any{verify.ErrRejected}, args...)...)
}
