package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// Format 2 is read in entry order: Index, then Locations, then Pack, then
// End. Each checks its entry's name and size before returning a reader of it;
// a call out of order is an error.

// Index returns the index entry. Its size must be the manifest's index size;
// reading it to the end checks its sha256 against the manifest's pin (a
// mismatch is returned instead of io.EOF).
func (r *Reader) Index() (io.Reader, error) {
	ix := r.Manifest.Index
	if ix == nil {
		return nil, fmt.Errorf("bundle: internal error: Index on a schema-%d bundle", r.Manifest.Schema)
	}
	hdr, err := r.entry(0, IndexName)
	if err != nil {
		return nil, err
	}
	if hdr.Size != ix.Size {
		return nil, rejectf("%s is %d bytes, the manifest pins %d", IndexName, hdr.Size, ix.Size)
	}
	return &digestReader{r: &truncReader{r: r.tr, what: IndexName}, h: sha256.New(), want: ix.SHA256}, nil
}

// Locations returns the locations entry, which names exactly one pack.
func (r *Reader) Locations() (io.Reader, error) {
	hdr, err := r.entry(1, LocationsName)
	if err != nil {
		return nil, err
	}
	n := r.Manifest.Index.Chunks
	if least, most := chunkindex.LocationsBounds(1, n); hdr.Size < least || hdr.Size > most {
		return nil, rejectf("%s is %d bytes; locations of %d chunks in one pack take %d to %d", LocationsName, hdr.Size, n, least, most)
	}
	return &truncReader{r: r.tr, what: LocationsName}, nil
}

// Pack returns the pack entry and its size. The caller checks that its
// frames come in the order the locations give and verifies every chunk.
func (r *Reader) Pack() (io.Reader, int64, error) {
	hdr, err := r.entry(2, PackName)
	if err != nil {
		return nil, 0, err
	}
	if most := r.Manifest.Index.Chunks * verify.MaxChunkSize; hdr.Size > most {
		return nil, 0, rejectf("%s is %d bytes, more than %d chunks can take (%d)", PackName, hdr.Size, r.Manifest.Index.Chunks, most)
	}
	return &truncReader{r: r.tr, what: PackName}, hdr.Size, nil
}

// End checks that nothing follows the pack.
func (r *Reader) End() error {
	if r.step != 3 {
		return fmt.Errorf("bundle: internal error: End before the pack was read")
	}
	hdr, err := r.tr.Next()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return truncated("after "+PackName, err)
	}
	return rejectf("entry %q after %s: not a format-2 bundle as written", hdr.Name, PackName)
}

// entry reads the header of format-2 entry number step, which must be name.
func (r *Reader) entry(step int, name string) (*tar.Header, error) {
	if r.Manifest.Index == nil || r.step != step {
		return nil, fmt.Errorf("bundle: internal error: %s read out of order", name)
	}
	hdr, err := r.tr.Next()
	if err != nil {
		return nil, truncated("before "+name, err)
	}
	if hdr.Name != name || hdr.Typeflag != tar.TypeReg {
		return nil, rejectf("entry %d is %q, want %s (format 2: %s, %s, %s, %s)", step+2, hdr.Name, name,
			EnvelopeName, IndexName, LocationsName, PackName)
	}
	r.step++
	return hdr, nil
}

// digestReader hashes what it reads and, at the end, compares.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if errors.Is(err, io.EOF) {
		if got := verify.HexDigest(d.h.Sum(nil)); got != d.want {
			return n, rejectf("%s has sha256 %s, the manifest pins %s", IndexName, got, d.want)
		}
	}
	return n, err
}
