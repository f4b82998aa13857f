package fetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"

	"github.com/modelslot/modelslot/verify"
)

// assembleIndexed completes a schema-2 plan's staged files with the chunks
// the slots hold and the repeats of chunks of the version itself — each
// range read and hashed once, reflinked where the filesystem can — and moves
// them into fill unhashed (AdoptVerified): every byte of them was hashed
// against the index as it was written. Whole files identical to a slot's are
// taken as they are.
func (p *Plan) assembleIndexed(ctx context.Context, fill Fill) error {
	x := p.ix
	out, err := x.openStaged()
	if err != nil {
		return err
	}
	cp := &copier{x: x, out: out, clone: probeReflink(x.srcs, firstOf(x.srcFiles), x.w), srcs: map[int]*os.File{}}
	err = x.walk(ctx, false, cp.entry)
	if jerr := cp.flush(); err == nil {
		err = jerr
	}
	cp.close()
	closeAll(out)
	if err == nil && len(cp.stale) > 0 {
		if err = x.w.appendOrdinals(noReuse, cp.stale); err == nil {
			err = fmt.Errorf("%d chunks to take from the source instead, the first: %w", len(cp.stale), cp.firstStale)
		}
	}
	if err != nil {
		return err
	}
	for i, f := range p.Manifest.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if src := x.whole[i]; src >= 0 {
			err = reuseWhole(ctx, fill, f, x.srcs, x.srcFiles[src], cp.clone)
		} else {
			err = adoptVerified(ctx, fill, f, x.w)
		}
		if err != nil {
			return fmt.Errorf("assemble %s: %w", f.Path, err)
		}
	}
	return nil
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// adoptVerified moves a staged file, verified chunk by chunk, into fill;
// across filesystems it is copied instead (and then hashed at commit).
func adoptVerified(ctx context.Context, fill Fill, f verify.File, w *work) error {
	err := fill.AdoptVerified(f, w.root, path.Join(w.rel, fileRel(f)))
	if err != nil && isCrossDevice(err) {
		return adopt(ctx, fill, f, w)
	}
	return err
}

// errStaleReuse: chunks the plan took from a slot (or from their first use
// in the version) did not match their digest when copied — a slot file
// changed since it was verified, or two digests that share the 8-byte
// prefix the reuse table keys on. Those ordinals are in the work
// directory's noReuse file, and a new plan downloads them
// (Source.fill plans once more).
var errStaleReuse = errors.New("not the chunk the plan counted on")

// copier fills the kSlot, kDup and kInline entries of the staged files.
type copier struct {
	stale      []int64 // ordinals whose source did not match (errStaleReuse)
	firstStale error   // the first of them, for the message
	x          *indexed
	out        []*os.File
	clone      bool
	srcs       map[int]*os.File // open slot files
	ords       []int64          // written since the last journal append
	span       span             // chunks to reflink as one range (clone)
}

// span is a range of a slot file to reflink into a staged file: chunks
// that follow each other in both are cloned together, so only the span's
// edges are copied, not every chunk's.
type span struct {
	file   int   // staged file
	off    int64 // in it
	src    int   // slot file
	srcOff int64
	n      int64
}

// extend adds a chunk to the span if it continues it in both files.
func (s *span) extend(file int, off int64, src int, srcOff, n int64) bool {
	if s.n == 0 || s.file != file || s.src != src || s.off+s.n != off || s.srcOff+s.n != srcOff {
		return false
	}
	s.n += n
	return true
}

// flushSpan reflinks the pending span (copying its unaligned edges).
func (cp *copier) flushSpan() error {
	s := cp.span
	cp.span = span{}
	if s.n == 0 {
		return nil
	}
	return cloneOrCopyRange(cp.out[s.file], s.off, cp.x.srcs, slotRange{file: cp.x.srcFiles[s.src], off: s.srcOff}, s.n)
}

func (cp *copier) entry(e *entry) error {
	var err error
	switch cp.x.kind[e.Ordinal] {
	case kSlot:
		err = cp.fromSlot(e)
	case kDup:
		if err = cp.flushSpan(); err == nil { // its first use may be in the span
			err = cp.fromFirst(e)
		}
	case kInline:
		return cp.fromManifest(e) // not journaled: the next attempt writes it again
	default:
		return nil
	}
	if errors.Is(err, errStaleReuse) {
		if len(cp.stale) == 0 {
			cp.firstStale = err
			slog.Warn("a chunk to reuse did not match its digest; it will be downloaded instead", "err", err)
		}
		cp.stale = append(cp.stale, e.Ordinal)
		return nil
	}
	if err != nil {
		return err
	}
	cp.ords = append(cp.ords, e.Ordinal)
	if len(cp.ords) >= journalBatch {
		return cp.flush()
	}
	return nil
}

func (cp *copier) flush() error {
	if err := cp.flushSpan(); err != nil {
		return err
	}
	err := cp.x.w.recordOrdinals(cp.ords)
	cp.ords = cp.ords[:0]
	return err
}

// fromSlot copies a chunk a slot holds, after hashing it there: the slot's
// files are only as good as their last verification.
func (cp *copier) fromSlot(e *entry) error {
	pos, _ := cp.x.reuse.find(e.Sum)
	fi, off := unpackPos(pos)
	src, err := cp.src(fi)
	if err != nil {
		return err
	}
	buf := getBuf(int64(e.Size))[:e.Size]
	defer putBuf(buf)
	if _, err := src.ReadAt(buf, off); err != nil || sha256.Sum256(buf) != e.Sum {
		return fmt.Errorf("chunk %s: the slot's %s does not hold it at byte %d (changed since it was verified? `modelslot verify` checks the slot; read: %v): %w",
			e.Sum, cp.x.srcFiles[fi], off, err, errStaleReuse)
	}
	if !cp.clone {
		_, err = cp.out[e.File].WriteAt(buf, e.Offset)
		return err
	}
	if cp.span.extend(e.File, e.Offset, fi, off, int64(e.Size)) {
		return nil
	}
	if err := cp.flushSpan(); err != nil {
		return err
	}
	cp.span = span{file: e.File, off: e.Offset, src: fi, srcOff: off, n: int64(e.Size)}
	return nil
}

// fromFirst copies a repeated chunk from its first use in the staged files,
// which was written (and hashed) earlier in the index order.
func (cp *copier) fromFirst(e *entry) error {
	pos, _ := cp.x.first.find(e.Sum)
	fi, off := unpackPos(pos)
	buf := getBuf(int64(e.Size))[:e.Size]
	defer putBuf(buf)
	if _, err := cp.out[fi].ReadAt(buf, off); err != nil || sha256.Sum256(buf) != e.Sum {
		return fmt.Errorf("repeat of chunk %s: its first copy (%s at %d) does not match (read: %v): %w",
			e.Sum, cp.x.m.Files[fi].Path, off, err, errStaleReuse)
	}
	_, err := cp.out[e.File].WriteAt(buf, e.Offset)
	return err
}

// fromManifest writes a chunk of a file whose bytes the manifest carries:
// they matched the file's signed sha256 when the manifest was checked, and
// each chunk is held to the index too, like every byte of an adopted file.
func (cp *copier) fromManifest(e *entry) error {
	data, end := cp.x.inline[e.File], e.Offset+int64(e.Size)
	if end > int64(len(data)) || sha256.Sum256(data[e.Offset:end]) != e.Sum {
		return rejectf("file %s: its inline data is not chunk %d of the index at byte %d: the manifest disagrees with its index",
			cp.x.m.Files[e.File].Path, e.Ordinal, e.Offset)
	}
	if _, err := cp.out[e.File].WriteAt(data[e.Offset:end], e.Offset); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return nil
}

func (cp *copier) src(i int) (*os.File, error) {
	if f, ok := cp.srcs[i]; ok {
		return f, nil
	}
	f, err := cp.x.srcs.open(cp.x.srcFiles[i])
	if err != nil {
		return nil, fmt.Errorf("reuse from a slot: %w", err)
	}
	cp.srcs[i] = f
	return f, nil
}

func (cp *copier) close() {
	for _, f := range cp.srcs {
		f.Close()
	}
}
