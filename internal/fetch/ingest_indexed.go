package fetch

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/verify"
)

// loadBundleIndex copies a format-2 bundle's index (its digest checked as it
// is read) and locations into the work directory.
func loadBundleIndex(r *bundle.Reader, w *work) error {
	ix, err := r.Index()
	if err != nil {
		return err
	}
	if err := copyTo(w, IndexFile, ix); err != nil {
		return err
	}
	loc, err := r.Locations()
	if err != nil {
		return err
	}
	return copyTo(w, locFile, loc)
}

// copyTo writes r to the file rel of the work directory w, through a
// ".part" name renamed into place.
func copyTo(w *work, rel string, r io.Reader) error {
	part := rel + ".part"
	out, err := w.open(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.root.RemoveAll(path.Join(w.rel, part))
		return err
	}
	return w.rename(part, rel)
}

// ingestIndexed reads a format-2 bundle's pack, in one pass: walking the index
// and the locations, each first use of a chunk is the next frame of the pack
// (anything else is a rejection: the bundle is not as written); the frames the
// plan fetches are decompressed, hashed and written to their places, the
// others skipped. The index walk ends where the pack must end.
func (p *Plan) ingestIndexed(ctx context.Context, r *bundle.Reader, progress Progress) error {
	x := p.ix
	pack, size, err := r.Pack()
	if err != nil {
		return err
	}
	out, err := x.openStaged()
	if err != nil {
		return err
	}
	defer closeAll(out)
	in := &packStream{x: x, out: out, r: pack, report: newReporter(progress, size)}
	err = x.walk(ctx, true, in.entry)
	if jerr := x.w.recordOrdinals(in.ords); err == nil {
		err = jerr
	}
	if err != nil {
		return fmt.Errorf("ingest bundle: %w", err)
	}
	if int64(in.pos) != size {
		return rejectf("ingest bundle: %s has %d bytes, its chunks end at %d", bundle.PackName, size, in.pos)
	}
	return r.End()
}

// packStream is the position in a bundle's pack.
type packStream struct {
	x      *indexed
	out    []*os.File
	r      io.Reader
	pos    uint64
	ords   []int64
	report *reporter
}

func (s *packStream) entry(e *entry) error {
	off := e.loc.Offset
	switch {
	case off == s.pos:
	case off < s.pos && s.x.kind[e.Ordinal] != kFetch:
		return nil // a later use, or a chunk not needed from the bundle
	default:
		return rejectf("%s: chunk %d of the index is at byte %d, the next frame at %d: the pack is not in order of first use",
			bundle.PackName, e.Ordinal, off, s.pos)
	}
	s.pos += uint64(e.loc.CSize)
	s.report.add(int64(e.loc.CSize))
	if s.x.kind[e.Ordinal] != kFetch {
		_, err := io.CopyN(io.Discard, s.r, int64(e.loc.CSize))
		return err
	}
	z := getBuf(int64(e.loc.CSize))[:e.loc.CSize]
	defer putBuf(z)
	if _, err := io.ReadFull(s.r, z); err != nil {
		return err
	}
	vc := verify.Chunk{SHA256: e.Sum.String(), Size: int64(e.Size), CSize: int64(e.loc.CSize)}
	plain := getBuf(vc.Size)
	defer putBuf(plain)
	data, err := decodeStored(z, vc, plain)
	if err != nil { // the bundle is the artifact: reading it again gives the same bytes
		return fmt.Errorf("%w: %w", verify.ErrRejected, err)
	}
	if _, err := s.out[e.File].WriteAt(data, e.Offset); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	s.ords = append(s.ords, e.Ordinal)
	if len(s.ords) >= journalBatch {
		err := s.x.w.recordOrdinals(s.ords)
		s.ords = s.ords[:0]
		return err
	}
	return nil
}
