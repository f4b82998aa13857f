package fetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// Where each index entry of a schema-2 install comes from.
const (
	kFetch  uint8 = iota // the repository or the bundle
	kStaged              // written by an earlier attempt and re-hashed now
	kSlot                // a slot holds it: copied (or reflinked) and hashed
	kDup                 // a later use of a chunk of this version: copied from its first use
	kWhole               // its file is identical to a slot's and reused whole
	kInline              // its file's bytes are in the signed manifest (verify.File.Data): written from there
)

// Names in a work directory, and in a slot's .modelslot/.
const (
	IndexFile    = "index.idx"     // the index the manifest pins (also kept in the slot)
	locFile      = "locations.loc" // where the source keeps each chunk
	ordJournal   = "journal2"      // index ordinals written, as "from-to" lines
	noReuse      = "noreuse"       // index ordinals a slot did not hold after all: downloaded instead
	journalBatch = 256             // ordinals buffered before a journal append
)

// indexed is the plan of a schema-2 install. Nothing in it grows with the
// model but the per-entry kind (one byte) and the two digest tables (16 bytes
// a chunk): the index and the locations are streamed from the work directory
// each time they are walked.
type indexed struct {
	m        *verify.Manifest
	w        *work
	kind     []uint8  // per index ordinal
	first    table    // first use of each chunk of this version, in the staged files
	reuse    table    // chunks the slots hold, positions into srcFiles
	srcFiles []string // the slots' files
	srcs     sources  // the slots, to open srcFiles beneath
	whole    []int    // per manifest file: an identical slot file (into srcFiles), or -1
	inline   [][]byte // per manifest file: its bytes from the manifest, or nil
	noReuse  bitset   // ordinals to download although a slot or a first use seemed to hold them
	// locs brings the locations into the work directory; nil when they are
	// there already (a bundle's). Called once classify finds entries to
	// fetch: an install that fetches nothing never asks for them.
	locs locLoader
	// moreLocs brings the locations of the entries to fetch; set when the
	// staged locations hold only their head and those entries (sparse), so
	// a walk reads the locations of kFetch entries only.
	moreLocs locFetcher
}

// entry is one index entry with its location.
type entry struct {
	chunkindex.Chunk
	loc chunkindex.Loc
}

// planIndexed plans a schema-2 install whose index is in the work directory
// (loadIndex); the locations are too, or locs brings them once the plan finds
// chunks to download. srcs are the slots that may hold chunks.
func (p *Plan) planIndexed(ctx context.Context, locs locLoader, srcs sources) error {
	m := p.Manifest
	x := &indexed{m: m, w: p.work, whole: make([]int, len(m.Files)), inline: make([][]byte, len(m.Files)), srcs: srcs, locs: locs}
	p.ix = x
	if err := checkIndexFile(x.w, IndexFile, m.Index); err != nil {
		return err
	}
	for _, f := range m.Files {
		if f.Size >= maxFileOffset {
			return rejectf("file %s: %d bytes, more than the %d a device installs", f.Path, f.Size, int64(maxFileOffset))
		}
	}
	x.indexSources(srcs)
	for i := range m.Files {
		x.inline[i] = m.Files[i].Inline()
	}
	// A file reused whole is in a slot at the same offsets, so its chunks are
	// reuse sources for the rest of the version.
	err := x.walk(ctx, false, func(e *entry) error {
		if w := x.whole[e.File]; w >= 0 {
			x.reuse.add(e.Sum, w, e.Offset)
		} else {
			x.first.add(e.Sum, e.File, e.Offset)
		}
		return nil
	})
	if err != nil {
		return err
	}
	x.first.seal()
	x.reuse.seal()
	for i, f := range m.Files {
		if x.whole[i] >= 0 {
			p.ReusedSize += f.Size
			p.WholeSize += f.Size
		}
	}
	x.kind = make([]uint8, m.Index.Chunks)
	return x.classify(ctx, p)
}

// classify decides every entry's kind and adds up the plan's sizes, then
// (with the locations of the entries to fetch, brought now if staging has
// only the locations' head) the runs Download will request.
func (x *indexed) classify(ctx context.Context, p *Plan) error {
	done, err := x.w.journaledOrdinals(x.m.Index.Chunks)
	if err != nil {
		return err
	}
	if x.noReuse, err = x.w.readOrdinals(noReuse, x.m.Index.Chunks); err != nil {
		return err
	}
	staged := &fileCursor{file: -1}
	defer staged.close()
	var fetch []ordRange
	err = x.walk(ctx, false, func(e *entry) error {
		k := x.kindOf(e, done, staged)
		x.kind[e.Ordinal] = k
		switch k {
		case kStaged:
			p.StagedSize += int64(e.Size)
		case kDup:
			p.CopiedSize += int64(e.Size)
		case kInline:
			p.InlineSize += int64(e.Size)
		case kSlot:
			p.ReusedSize += int64(e.Size)
		case kFetch:
			p.FetchChunks++
			p.FetchSize += int64(e.Size)
			if n := len(fetch); n > 0 && fetch[n-1].end == e.Ordinal {
				fetch[n-1].end++
			} else {
				fetch = append(fetch, ordRange{e.Ordinal, e.Ordinal + 1})
			}
		}
		return nil
	})
	if err != nil || len(fetch) == 0 {
		return err // nothing to fetch: no locations needed
	}
	if x.locs != nil {
		if x.moreLocs, err = x.locs(ctx); err != nil {
			return err
		}
	}
	if x.moreLocs != nil {
		if err := x.moreLocs(ctx, fetch); err != nil {
			return err
		}
	}
	packs, err := x.packs()
	if err != nil {
		return err
	}
	// The runs Download will request, to count the bytes on the wire (gaps
	// read through included) and the requests.
	b := &runs{packs: packs, emit: func(r *run) error {
		p.FetchBytes += int64(r.end - r.start)
		p.FetchRequests++
		return nil
	}}
	err = x.walk(ctx, true, func(e *entry) error {
		if x.kind[e.Ordinal] != kFetch {
			return nil
		}
		return b.add(e)
	})
	if err != nil {
		return err
	}
	return b.flush()
}

func (x *indexed) kindOf(e *entry, done bitset, staged *fileCursor) uint8 {
	if x.whole[e.File] >= 0 {
		return kWhole
	}
	if x.inline[e.File] != nil {
		return kInline // rewritten from the manifest on every attempt: cheaper than re-hashing
	}
	if done.has(e.Ordinal) && staged.holds(x.w, fileRel(x.m.Files[e.File]), e.File, e.Chunk) {
		return kStaged
	}
	if x.noReuse.has(e.Ordinal) {
		return kFetch // a slot's or a first use's bytes did not match when copied (errStaleReuse)
	}
	if pos, _ := x.first.find(e.Sum); pos != packPos(e.File, e.Offset) {
		return kDup
	}
	if _, ok := x.reuse.find(e.Sum); ok {
		return kSlot
	}
	return kFetch
}

// walk streams the index (and, with locs, the locations in step) from the
// work directory, calling fn for each entry in index order.
func (x *indexed) walk(ctx context.Context, locs bool, fn func(e *entry) error) error {
	fi, err := x.w.open(IndexFile, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer fi.Close()
	ir, err := chunkindex.NewIndexReader(fi, x.m)
	if err != nil {
		return err
	}
	var lr *chunkindex.LocReader
	if locs {
		fl, err := x.w.open(locFile, os.O_RDONLY)
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		defer fl.Close()
		if lr, err = chunkindex.NewLocReader(fl, ir.Total()); err != nil {
			return locErr(err)
		}
	}
	var e entry
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := ir.Next()
		if errors.Is(err, io.EOF) {
			if lr != nil {
				if _, err := lr.Next(0); !errors.Is(err, io.EOF) {
					return locErr(err)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		e.Chunk = c
		switch {
		case lr == nil:
		case x.moreLocs != nil && x.kind[c.Ordinal] != kFetch:
			e.loc = chunkindex.Loc{} // not fetched: staging holds zeros there
			err = lr.Skip(c.Size)
		default:
			e.loc, err = lr.Next(c.Size)
		}
		if err != nil {
			return locErr(err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
}

// packs reads the pack table of the locations in the work directory.
func (x *indexed) packs() ([]chunkindex.Digest, error) {
	fl, err := x.w.open(locFile, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	defer fl.Close()
	lr, err := chunkindex.NewLocReader(fl, x.m.Index.Chunks)
	if err != nil {
		return nil, locErr(err)
	}
	return lr.Packs, nil
}

// locErr: locations are unsigned, so bad ones are a source problem worth
// another try (a mirror mid-sync), never a rejection of the signed version.
func locErr(err error) error {
	return fmt.Errorf("%w: %w; try again later or another mirror", ErrDownload, err)
}

// indexSources fills the reuse table (sealed by the caller) and the
// whole-file matches from the slots. A slot whose index does not match its manifest is skipped, not
// trusted: it only costs a download.
func (x *indexed) indexSources(srcs []*Active) {
	wholeBy := map[string]int{}
	for _, a := range srcs {
		if a == nil || a.Manifest == nil {
			continue
		}
		base := len(x.srcFiles)
		for _, f := range a.Manifest.Files {
			name := filepath.Join(a.Dir, filepath.FromSlash(f.Path))
			if k := wholeKey(f); f.Size > 0 {
				if _, ok := wholeBy[k]; !ok {
					wholeBy[k] = len(x.srcFiles)
				}
			}
			x.srcFiles = append(x.srcFiles, name)
		}
		n := len(x.reuse)
		if err := x.addSource(a, base); err != nil {
			slog.Warn("not reusing a slot's chunks: its index cannot be read", "dir", a.Dir, "err", err)
			x.reuse = x.reuse[:n]
		}
	}
	for i, f := range x.m.Files {
		x.whole[i] = -1
		if src, ok := wholeBy[wholeKey(f)]; ok && f.Size > 0 {
			x.whole[i] = src
		}
	}
}

func wholeKey(f verify.File) string { return fmt.Sprintf("%s/%d", f.SHA256, f.Size) }

// addSource adds a slot's chunks: a schema-1 manifest lists them inline, a
// schema-2 slot keeps its index in .modelslot/, checked against its manifest.
func (x *indexed) addSource(a *Active, base int) error {
	if a.Manifest.Index == nil {
		for i, f := range a.Manifest.Files {
			var off int64
			for _, c := range f.Chunks {
				d, err := chunkindex.ParseDigest(c.SHA256)
				if err != nil {
					return err
				}
				x.reuse.add(d, base+i, off)
				off += c.Size
			}
		}
		return nil
	}
	f, err := a.open(path.Join(verify.MetaDir, IndexFile))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	ir, err := chunkindex.NewIndexReader(io.TeeReader(io.LimitReader(f, a.Manifest.Index.Size+1), h), a.Manifest)
	if err != nil {
		return err
	}
	for {
		c, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		x.reuse.add(c.Sum, base+c.File, c.Offset)
	}
	if got := verify.HexDigest(h.Sum(nil)); got != a.Manifest.Index.SHA256 {
		return fmt.Errorf("index has sha256 %s, its manifest pins %s", got, a.Manifest.Index.SHA256)
	}
	return nil
}

// checkIndexFile hashes the stored index rel of the work directory w
// against the manifest's pin.
func checkIndexFile(w *work, rel string, ref *verify.IndexRef) error {
	f, err := w.open(rel, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, ref.Size+1))
	if err != nil {
		return fmt.Errorf("chunk index: %w", err)
	}
	if got := verify.HexDigest(h.Sum(nil)); n != ref.Size || got != ref.SHA256 {
		return fmt.Errorf("%w: %d bytes with sha256 %s, the manifest pins %d bytes with %s",
			ErrDownload, n, got, ref.Size, ref.SHA256)
	}
	return nil
}

// fileCursor reads chunks back from one file at a time, for re-hashing.
type fileCursor struct {
	file int
	f    *os.File
}

// holds reports whether the staged file rel of w (manifest file i) has
// chunk c's bytes. One that cannot be opened (missing, or a link or FIFO
// there, which the install refuses when it prepares the file) holds nothing.
func (fc *fileCursor) holds(w *work, rel string, i int, c chunkindex.Chunk) bool {
	if fc.file != i {
		fc.close()
		fc.file = i
		fc.f, _ = w.open(rel, os.O_RDONLY)
	}
	if fc.f == nil {
		return false
	}
	buf := getBuf(int64(c.Size))[:c.Size]
	defer putBuf(buf)
	if _, err := fc.f.ReadAt(buf, c.Offset); err != nil {
		return false
	}
	return sha256.Sum256(buf) == c.Sum
}

func (fc *fileCursor) close() {
	if fc.f != nil {
		fc.f.Close()
		fc.f = nil
	}
}

// missing reports whether err is a file that does not exist.
func missing(err error) bool { return errors.Is(err, fs.ErrNotExist) }
