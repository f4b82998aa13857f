package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// The index of a version whose files pin their sections (verify.File.Index)
// is assembled from what the device already has — a file the new version did
// not change has, byte for byte, the section a slot's stored index holds for
// it, and a large file changed in a few places keeps most of its segments
// (chunkindex.SegmentsOf) — and Range requests for the rest, so a small
// change of a 20 GiB model fetches kilobytes of index, not megabytes. Every
// piece is checked against its signed pin as it is written, and the whole
// result against the index's pin before it is used. A file cut into one
// chunk (or none) needs neither: its section follows from its manifest entry
// (chunkindex.DerivedSection) when that is what its pin names.

// sectionGap is the most index bytes not needed read through to join two
// needed pieces into one request: below it another request costs more.
const sectionGap = 16 << 10

// pieceRequests is the most requests the index pieces of one install take.
const pieceRequests = 4

// indexPiece is a run of bytes of the new index with a signed pin: a file's
// whole section, or one segment of its entries.
type indexPiece struct {
	off, end int64
	sum      chunkindex.Digest
	local    *localPiece // nil: derived or fetched
	derived  []byte      // the section as the manifest gives it; nil: local or fetched
}

// fetched reports whether the piece must be requested.
func (p indexPiece) fetched() bool { return p.local == nil && p.derived == nil }

// sectionCount is a file's chunk count and where it goes in the index.
type sectionCount struct {
	off int64
	n   uint32
}

// localPiece is a section or segment in a slot's stored index.
type localPiece struct {
	src *Active
	off int64
}

// storedIndex is where a slot keeps its index, beneath its directory.
var storedIndex = path.Join(verify.MetaDir, IndexFile)

// localPieces maps the digest of every section and segment of the slots'
// stored indexes to where it is. An index that cannot be read is passed
// over: it costs only the download of its pieces.
func localPieces(srcs sources) map[chunkindex.Digest]localPiece {
	out := map[chunkindex.Digest]localPiece{}
	add := func(sum chunkindex.Digest, p localPiece) {
		if _, ok := out[sum]; !ok {
			out[sum] = p
		}
	}
	for _, a := range srcs {
		if a == nil || a.Manifest == nil || a.Manifest.Index == nil {
			continue
		}
		f, err := a.open(storedIndex)
		if err == nil {
			err = chunkindex.ScanSections(io.LimitReader(f, a.Manifest.Index.Size), func(_ int, off, _ int64, sum chunkindex.Digest, segs []chunkindex.SegmentAt) {
				add(sum, localPiece{src: a, off: off})
				for _, g := range segs {
					add(g.Sum, localPiece{src: a, off: g.Off})
				}
			})
			f.Close()
		}
		if err != nil {
			slog.Debug("not reusing a slot's index sections", "slot", a.Dir, "err", err)
		}
	}
	return out
}

// indexPieces lays out m's index by its files' pins: a file's whole section
// where a slot holds it or else the manifest gives it (derived), else its
// segments (or its section, if it has one segment), each marked local where
// a slot holds it. nil when m pins no sections. A file taken by segments
// also needs its chunk count (the section's first 4 bytes, from the signed
// manifest) written: counts.
func indexPieces(m *verify.Manifest, local map[chunkindex.Digest]localPiece) (pieces []indexPiece, counts []sectionCount, err error) {
	if len(m.Files) == 0 || m.Files[0].Index == nil {
		return nil, nil, nil
	}
	piece := func(off, end int64, sum chunkindex.Digest) indexPiece {
		p := indexPiece{off: off, end: end, sum: sum}
		if l, ok := local[sum]; ok {
			p.local = &l
		}
		return p
	}
	off := int64(chunkindex.HeaderSize)
	for _, f := range m.Files {
		sum, err := chunkindex.ParseDigest(f.Index.SHA256)
		if err != nil {
			return nil, nil, rejectf("file %s: index section: %v", f.Path, err)
		}
		end := off + chunkindex.SectionSize(f.Index.Chunks)
		_, whole := local[sum]
		if d := chunkindex.DerivedSection(f); d != nil && !whole {
			pieces = append(pieces, indexPiece{off: off, end: end, sum: sum, derived: d})
			off = end
			continue
		}
		segs, err := f.Index.SegmentList()
		if err != nil {
			return nil, nil, err
		}
		if whole || len(segs) == 0 {
			pieces = append(pieces, piece(off, end, sum))
			off = end
			continue
		}
		counts = append(counts, sectionCount{off: off, n: uint32(f.Index.Chunks)})
		at := off + 4
		for _, g := range segs {
			next := at + chunkindex.EntrySize*int64(g.Chunks)
			pieces = append(pieces, piece(at, next, g.SHA256))
			at = next
		}
		off = end
	}
	return pieces, counts, nil
}

// assembleIndex writes the index m pins into part from the slots' sections,
// the sections the manifest gives and Range requests to url for the rest,
// and checks it whole. It returns false, having written nothing, when m pins
// no sections, or the slots hold none of them and some must be fetched: one
// GET of the whole index is then the cheapest.
func (c *Client) assembleIndex(ctx context.Context, url string, m *verify.Manifest, w *work, part string, srcs sources) (bool, error) {
	pieces, counts, err := indexPieces(m, localPieces(srcs))
	local := slices.ContainsFunc(pieces, func(p indexPiece) bool { return p.local != nil })
	if err != nil || len(pieces) == 0 || !local && slices.ContainsFunc(pieces, indexPiece.fetched) {
		return false, err
	}
	out, err := w.open(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	defer out.Close()
	if _, err := out.WriteAt(chunkindex.Header(len(m.Files), uint64(m.Index.Chunks)), 0); err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	for _, c := range counts {
		if _, err := out.WriteAt(binary.LittleEndian.AppendUint32(nil, c.n), c.off); err != nil {
			return false, permanent(fmt.Errorf("staging: %w", err))
		}
	}
	var need []indexPiece
	stored := map[*Active]*os.File{} // each slot's index, opened once
	defer func() {
		for _, f := range stored {
			if f != nil {
				f.Close()
			}
		}
	}()
	for _, p := range pieces {
		switch {
		case p.derived != nil:
			err = writePiece(out, p, bytes.NewReader(p.derived))
		case p.local == nil || copyPiece(p, stored, out) != nil:
			need = append(need, p) // a slot's piece that no longer matches is fetched
		}
		if err != nil {
			return false, permanent(fmt.Errorf("staging: %w", err))
		}
	}
	for _, r := range pieceRanges(need) {
		whole := false
		err := c.retry(ctx, url, func(ctx context.Context) error {
			var err error
			whole, err = c.fetchPieces(ctx, url, r, out, m.Index.Size)
			return err
		})
		if err != nil {
			return false, err
		}
		if whole {
			break // the server sent the whole index: nothing is missing
		}
	}
	if err := out.Close(); err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	if err := checkIndexFile(w, part, m.Index); err != nil {
		// Each section matched its pin, so this is a manifest whose pins
		// disagree with its index: the whole index, as pinned, decides.
		slog.Info("the assembled chunk index does not match its pin; fetching it whole", "err", err)
		return false, nil
	}
	slog.Debug("chunk index assembled", "pieces", len(pieces), "fetched", len(need))
	return true, nil
}

// copyPiece copies a slot's piece into out, checking it against its pin (the
// slot's index may have changed since it was scanned). stored holds the
// slots' indexes opened so far.
func copyPiece(p indexPiece, stored map[*Active]*os.File, out *os.File) error {
	f, ok := stored[p.local.src]
	if !ok {
		var err error
		f, err = p.local.src.open(storedIndex)
		if err != nil {
			f = nil
		}
		stored[p.local.src] = f
	}
	if f == nil {
		return fmt.Errorf("the index of slot %s cannot be opened", p.local.src.Dir)
	}
	return writePiece(out, p, io.NewSectionReader(f, p.local.off, p.end-p.off))
}

// writePiece streams piece s from r to its place in out, hashing it on
// the way (a section of a huge file is megabytes: never held whole), and
// fails if the bytes are not the ones its pin names. Bytes that fail are
// overwritten by the next try, and the whole index is checked at the end.
func writePiece(out *os.File, s indexPiece, r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(io.NewOffsetWriter(out, s.off), io.TeeReader(io.LimitReader(r, s.end-s.off), h))
	if err != nil {
		return err
	}
	if n != s.end-s.off {
		return shortBody(uint64(s.off+n), io.ErrUnexpectedEOF)
	}
	if chunkindex.Digest(h.Sum(nil)) != s.sum {
		return fmt.Errorf("%w: index bytes %d-%d are not the piece the manifest pins", ErrDownload, s.off, s.end-1)
	}
	return nil
}

// pieceRanges joins the needed pieces (in index order) into the byte ranges
// to request: pieces at most sectionGap apart, then the closest ones, down
// to pieceRequests requests.
func pieceRanges(need []indexPiece) [][]indexPiece {
	starts := groupClose(len(need), func(i int) int64 { return need[i].off - need[i-1].end }, sectionGap, pieceRequests)
	return splitAt(need, starts)
}

// fetchPieces requests the bytes of the pieces r, checks each against its
// pin and writes it at its place in out. A server that ignores Range sends
// the whole index: it is written whole (whole is true) and checked by the
// caller like any other.
func (c *Client) fetchPieces(ctx context.Context, url string, r []indexPiece, out *os.File, size int64) (whole bool, err error) {
	start, end := r[0].off, r[len(r)-1].end
	body, whole, err := c.getRange(ctx, url, start, end, false)
	if err != nil {
		return false, err
	}
	defer body.Close()
	if whole {
		n, err := io.Copy(io.NewOffsetWriter(out, 0), io.LimitReader(body, size+1))
		if err == nil && n != size {
			err = fmt.Errorf("%w: the index has %d bytes, the manifest pins %d", ErrDownload, n, size)
		}
		return true, err
	}
	pos := start
	for _, s := range r {
		if _, err := io.CopyN(io.Discard, body, s.off-pos); err != nil {
			return false, shortBody(uint64(s.off), err)
		}
		if err := writePiece(out, s, body); err != nil {
			return false, err
		}
		pos = s.end
	}
	return false, nil
}
