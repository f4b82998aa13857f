// Package chunkindex is the binary format of a version's chunk list (the
// index, pinned by sha256 in the signed manifest) and of where a repository
// stores those chunks (the locations, unsigned). It only encodes, decodes and
// checks; it does no I/O of its own beyond the io.Reader/io.Writer it is given.
//
// Why two files: the index says what the files are made of and is as trusted as
// the manifest that pins it; the locations say where a repository (or a bundle)
// keeps each chunk, may differ between a repository and a bundle of the same
// signed version, and need no trust, because every chunk is verified by its own
// digest after it is decompressed. A wrong location costs a retry, never a
// wrong byte.
//
// Both are streamed: a reader holds one entry at a time (plus the pack table),
// so a 20 GiB model of ~300k chunks is read in constant memory.
//
// Index (little-endian):
//
//	magic   "MSLTIDX1"
//	files   uint32            must equal len(manifest.files)
//	chunks  uint64            total entries; must equal manifest.index.chunks
//	then for each file of the manifest, in manifest order:
//	  n     uint32            its chunks
//	  n ×   { sha256 [32]byte; size uint32 }   uncompressed bytes, in file order
//
// Locations (little-endian), entry i is the i-th chunk of the index:
//
//	magic   "MSLTLOC1"
//	packs   uint32
//	chunks  uint64            must equal the index's
//	packs × sha256 [32]byte   pack i is <repo>/packs/<hh>/<hex>.pack (PackPath)
//	chunks × { pack uint32; csize uint32; offset uint64 }
//
// A pack is a plain concatenation of stored chunks; a chunk is the csize
// bytes at offset of its pack: a zstd frame, or, where zstd would not make
// it smaller (random or already compressed data), its plain bytes, which is
// what csize == size means (Plain). A publisher never stores a frame of the
// chunk's own size, so the rule is unambiguous.
package chunkindex

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/modelslot/modelslot/verify"
)

const (
	indexMagic = "MSLTIDX1"
	locMagic   = "MSLTLOC1"

	// EntrySize is the bytes one chunk takes in the index.
	EntrySize = 32 + 4
	// LocSize is the bytes one chunk takes in the locations.
	LocSize = 4 + 4 + 8

	// MaxChunks bounds a version's chunks: 2^24 chunks of 64 KiB on average is
	// a 1 TiB model. It bounds what a hostile header can make a reader expect.
	MaxChunks = 1 << 24
	// MaxPacks bounds a locations file's pack table, which a reader holds in
	// memory (32 bytes a pack).
	MaxPacks = 1 << 20
)

// Digest is a raw sha256.
type Digest [32]byte

// String is the lower-case hex form, as in the manifest and the paths.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// ParseDigest reads a lower-case hex sha256.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if err := verify.CheckDigest(s); err != nil {
		return d, err
	}
	hex.Decode(d[:], []byte(s))
	return d, nil
}

// Entry is one chunk as the index lists it.
type Entry struct {
	Sum  Digest
	Size uint32 // uncompressed bytes
}

// Loc is where a repository keeps one chunk.
type Loc struct {
	Pack   uint32 // index into the pack table
	CSize  uint32 // compressed bytes
	Offset uint64 // in the pack
}

// Plain reports whether a chunk stored in csize bytes for size plain bytes
// is stored as those bytes, not as a zstd frame.
func Plain(csize, size uint32) bool { return csize == size }

// PackPath is where pack sum is stored, relative to <repo>/.
func PackPath(sum Digest) string {
	h := sum.String()
	return path.Join("packs", h[:2], h+".pack")
}

// IndexPath is where the index with digest sum is stored, relative to <repo>/.
func IndexPath(sum string) string { return path.Join("index", sum[:2], sum+".idx") }

// LocationsPath is where a repository keeps the locations of the chunks of
// the index with digest sum, relative to <repo>/.
func LocationsPath(sum string) string { return path.Join("index", sum[:2], sum+".loc") }

// IndexSize is the encoded size of an index of files files and chunks chunks.
func IndexSize(files, chunks int) int64 {
	return int64(HeaderSize) + 4*int64(files) + EntrySize*int64(chunks)
}

// LocationsSize is the encoded size of locations with packs packs and chunks chunks.
func LocationsSize(packs, chunks int) int64 {
	return LocOffset(uint32(packs), int64(chunks))
}

// HeaderSize is the index's bytes before the first file's section.
const HeaderSize = len(indexMagic) + 4 + 8

// SectionSize is the bytes of one file's section of the index: its chunk
// count and its n entries. File i's section starts at HeaderSize plus the
// sizes of the sections before it.
func SectionSize(n int64) int64 { return 4 + EntrySize*n }

// Header is the index's header for files files and total chunks.
func Header(files int, total uint64) []byte {
	b := make([]byte, HeaderSize)
	copy(b, indexMagic)
	binary.LittleEndian.PutUint32(b[8:12], uint32(files))
	binary.LittleEndian.PutUint64(b[12:20], total)
	return b
}

// WriteIndex encodes files (each file's chunks, in manifest order) to w.
func WriteIndex(w io.Writer, files [][]Entry) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var total uint64
	for _, f := range files {
		total += uint64(len(f))
	}
	if total > MaxChunks {
		return fmt.Errorf("chunk index: %d chunks, more than the %d a device accepts", total, MaxChunks)
	}
	bw.Write(Header(len(files), total))
	for _, f := range files {
		writeSection(bw, f)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write chunk index: %w", err)
	}
	return nil
}

// writeSection writes one file's section: its count, then its entries.
func writeSection(w io.Writer, f []Entry) {
	var b [EntrySize]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(len(f)))
	w.Write(b[:4])
	for _, e := range f {
		w.Write(encodeEntry(b[:], e))
	}
}

// encodeEntry writes e's EntrySize bytes into b and returns them.
func encodeEntry(b []byte, e Entry) []byte {
	copy(b[:32], e.Sum[:])
	binary.LittleEndian.PutUint32(b[32:EntrySize], e.Size)
	return b[:EntrySize]
}

// Sections is each file's section pin, in order, as a schema-2 manifest
// carries them (verify.File.Index): the section's chunks, the sha256 of its
// bytes as WriteIndex writes them, and its segments when it has several.
func Sections(files [][]Entry) []verify.FileIndex {
	out := make([]verify.FileIndex, len(files))
	for i, f := range files {
		h := sha256.New()
		bw := bufio.NewWriterSize(h, 64<<10)
		writeSection(bw, f)
		bw.Flush()
		out[i] = verify.FileIndex{Chunks: int64(len(f)), SHA256: verify.HexDigest(h.Sum(nil))}
		if segs := SegmentsOf(f); segs != nil {
			out[i].Segments = verify.EncodeSegments(segs)
		}
	}
	return out
}

// WriteLocations encodes the pack table and one Loc per index entry to w.
func WriteLocations(w io.Writer, packs []Digest, locs []Loc) error {
	if len(packs) > MaxPacks || len(locs) > MaxChunks {
		return fmt.Errorf("chunk locations: %d packs and %d chunks, more than a device accepts (%d, %d)", len(packs), len(locs), MaxPacks, MaxChunks)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(locMagic)
	var b [32]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(len(packs)))
	binary.LittleEndian.PutUint64(b[4:12], uint64(len(locs)))
	bw.Write(b[:12])
	for _, p := range packs {
		bw.Write(p[:])
	}
	for i, l := range locs {
		if int(l.Pack) >= len(packs) {
			return fmt.Errorf("chunk locations: chunk %d names pack %d of %d", i, l.Pack, len(packs))
		}
		binary.LittleEndian.PutUint32(b[:4], l.Pack)
		binary.LittleEndian.PutUint32(b[4:8], l.CSize)
		binary.LittleEndian.PutUint64(b[8:16], l.Offset)
		bw.Write(b[:LocSize])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write chunk locations: %w", err)
	}
	return nil
}

// ScanSections reads an index's header and walks its file sections, calling
// fn with each section's file number, offset, size, sha256 and segments
// (SegmentsOf's, one or more). It checks only the framing (magic, counts
// within bounds): a section or segment is trusted only once its digest
// equals a signed pin (verify.File.Index).
func ScanSections(r io.Reader, fn func(file int, off, size int64, sum Digest, segs []SegmentAt)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var h [HeaderSize]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return badIndex("header: %v", err)
	}
	if string(h[:8]) != indexMagic {
		return badIndex("not a modelslot chunk index (magic %q)", h[:8])
	}
	files, total := binary.LittleEndian.Uint32(h[8:12]), binary.LittleEndian.Uint64(h[12:20])
	if total > MaxChunks {
		return badIndex("%d chunks, more than the %d allowed", total, MaxChunks)
	}
	off, seen := int64(HeaderSize), uint64(0)
	for i := range int(files) {
		var nb [4]byte
		if _, err := io.ReadFull(br, nb[:]); err != nil {
			return badIndex("file %d's chunk count: %v", i, err)
		}
		n := uint64(binary.LittleEndian.Uint32(nb[:]))
		if seen += n; seen > total {
			return badIndex("file %d: more chunks than the %d the header announced", i, total)
		}
		hs := sha256.New()
		hs.Write(nb[:])
		sg := newSegmenter(off + 4)
		var e [EntrySize]byte
		for j := uint64(0); j < n; j++ {
			if _, err := io.ReadFull(br, e[:]); err != nil {
				return badIndex("file %d's entry %d: %v", i, j, err)
			}
			hs.Write(e[:])
			sg.add(e[:])
		}
		var d Digest
		hs.Sum(d[:0])
		size := SectionSize(int64(n))
		fn(i, off, size, d, sg.cut())
		off += size
	}
	return nil
}

// Chunk is one index entry as a reader yields it, with where it goes.
type Chunk struct {
	Entry
	Ordinal int64 // position in the index, 0-based: the entry's number in the locations too
	File    int   // index into manifest.Files
	Offset  int64 // in that file
}

// IndexReader streams an index, checking it against its manifest as it goes:
// the file count, each file's chunks adding up to its size, every chunk within
// verify.MaxChunkSize and not empty, the total count. It does not check the
// digest: the caller verifies the index bytes against manifest.index.sha256
// before trusting them (the device downloads the index whole, bounded by
// manifest.index.size, and checks it first).
type IndexReader struct {
	r       *bufio.Reader
	m       *verify.Manifest
	total   uint64
	ordinal int64
	file    int   // current file
	left    int64 // chunks left in the current file
	off     int64 // offset in the current file
	started bool
	buf     [EntrySize]byte
}

// NewIndexReader reads the header of the index of m from r.
func NewIndexReader(r io.Reader, m *verify.Manifest) (*IndexReader, error) {
	ir := &IndexReader{r: bufio.NewReaderSize(r, 64<<10), m: m, file: -1}
	var h [len(indexMagic) + 12]byte
	if _, err := io.ReadFull(ir.r, h[:]); err != nil {
		return nil, badIndex("header: %v", err)
	}
	if string(h[:8]) != indexMagic {
		return nil, badIndex("not a modelslot chunk index (magic %q)", h[:8])
	}
	files := binary.LittleEndian.Uint32(h[8:12])
	ir.total = binary.LittleEndian.Uint64(h[12:20])
	if int(files) != len(m.Files) {
		return nil, badIndex("lists %d files, the manifest %d", files, len(m.Files))
	}
	if m.Index != nil && ir.total != uint64(m.Index.Chunks) {
		return nil, badIndex("lists %d chunks, the manifest %d", ir.total, m.Index.Chunks)
	}
	if ir.total > MaxChunks {
		return nil, badIndex("%d chunks, more than the %d allowed", ir.total, MaxChunks)
	}
	return ir, nil
}

// Total is the number of chunks the index lists.
func (ir *IndexReader) Total() int64 { return int64(ir.total) }

// Next returns the next chunk, in manifest file order and file offset order.
// After the last one it returns io.EOF, once every check has passed.
func (ir *IndexReader) Next() (Chunk, error) {
	for ir.left == 0 {
		if err := ir.endFile(); err != nil {
			return Chunk{}, err
		}
		if ir.file+1 == len(ir.m.Files) {
			return Chunk{}, ir.atEnd()
		}
		ir.file++
		ir.off = 0
		if _, err := io.ReadFull(ir.r, ir.buf[:4]); err != nil {
			return Chunk{}, badIndex("file %d's chunk count: %v", ir.file, err)
		}
		ir.left = int64(binary.LittleEndian.Uint32(ir.buf[:4]))
		ir.started = true
		if uint64(ir.ordinal+ir.left) > ir.total {
			return Chunk{}, badIndex("file %q: %d chunks, more than the %d the header announced", ir.m.Files[ir.file].Path, ir.left, ir.total)
		}
	}
	if _, err := io.ReadFull(ir.r, ir.buf[:]); err != nil {
		return Chunk{}, badIndex("chunk %d: %v", ir.ordinal, err)
	}
	c := Chunk{Ordinal: ir.ordinal, File: ir.file, Offset: ir.off}
	copy(c.Sum[:], ir.buf[:32])
	c.Size = binary.LittleEndian.Uint32(ir.buf[32:])
	f := ir.m.Files[ir.file]
	if c.Size == 0 || c.Size > verify.MaxChunkSize {
		return Chunk{}, badIndex("file %q chunk at %d: %d bytes; a chunk holds 1 to %d", f.Path, ir.off, c.Size, verify.MaxChunkSize)
	}
	if ir.off+int64(c.Size) > f.Size {
		return Chunk{}, badIndex("file %q: chunks run past its %d bytes", f.Path, f.Size)
	}
	ir.off += int64(c.Size)
	ir.left--
	ir.ordinal++
	return c, nil
}

func (ir *IndexReader) endFile() error {
	if ir.file >= 0 && ir.started && ir.off != ir.m.Files[ir.file].Size {
		f := ir.m.Files[ir.file]
		return badIndex("file %q: chunks add up to %d bytes, the file has %d", f.Path, ir.off, f.Size)
	}
	return nil
}

func (ir *IndexReader) atEnd() error {
	if uint64(ir.ordinal) != ir.total {
		return badIndex("%d chunks, the header announced %d", ir.ordinal, ir.total)
	}
	if _, err := ir.r.ReadByte(); err != io.EOF {
		return badIndex("data after its last chunk")
	}
	return io.EOF
}

// LocReader streams locations, one per index entry, in index order.
type LocReader struct {
	r     *bufio.Reader
	Packs []Digest // the pack table
	total uint64
	next  uint64
	buf   [LocSize]byte
}

// NewLocReader reads the header and pack table of locations for an index of
// chunks entries.
func NewLocReader(r io.Reader, chunks int64) (*LocReader, error) {
	lr := &LocReader{r: bufio.NewReaderSize(r, 64<<10)}
	var h [len(locMagic) + 12]byte
	if _, err := io.ReadFull(lr.r, h[:]); err != nil {
		return nil, badLocs("header: %v", err)
	}
	if string(h[:8]) != locMagic {
		return nil, badLocs("not modelslot chunk locations (magic %q)", h[:8])
	}
	packs := binary.LittleEndian.Uint32(h[8:12])
	lr.total = binary.LittleEndian.Uint64(h[12:20])
	if lr.total != uint64(chunks) {
		return nil, badLocs("for %d chunks, the index has %d", lr.total, chunks)
	}
	if packs > MaxPacks || (packs == 0 && chunks > 0) {
		return nil, badLocs("%d packs: want 1 to %d", packs, MaxPacks)
	}
	// Grown as it is read, not allocated from the header's word: the
	// locations are unsigned, and a short file claiming a million packs must
	// not cost 32 MiB.
	lr.Packs = make([]Digest, 0, min(packs, 1024))
	for range packs {
		var d Digest
		if _, err := io.ReadFull(lr.r, d[:]); err != nil {
			return nil, badLocs("pack table: %v", err)
		}
		lr.Packs = append(lr.Packs, d)
	}
	return lr, nil
}

// Skip passes over the next index entry's location without reading it, for
// locations fetched in part (only the entries a device downloads): the
// others are not there to check.
func (lr *LocReader) Skip() error {
	if lr.next == lr.total {
		return badLocs("more entries skipped than the %d locations", lr.total)
	}
	if _, err := lr.r.Discard(LocSize); err != nil {
		return badLocs("location %d: %v", lr.next, err)
	}
	lr.next++
	return nil
}

// LocHeaderSize is the bytes of a locations file before its pack table.
const LocHeaderSize = len(locMagic) + 4 + 8

// ParseLocHeader reads the pack and chunk counts of a locations file from
// its first LocHeaderSize bytes.
func ParseLocHeader(b []byte) (packs uint32, chunks uint64, err error) {
	if len(b) < LocHeaderSize || string(b[:8]) != locMagic {
		return 0, 0, badLocs("not modelslot chunk locations")
	}
	packs, chunks = binary.LittleEndian.Uint32(b[8:12]), binary.LittleEndian.Uint64(b[12:20])
	if packs > MaxPacks || chunks > MaxChunks {
		return 0, 0, badLocs("%d packs for %d chunks: more than a device accepts (%d, %d)", packs, chunks, MaxPacks, MaxChunks)
	}
	return packs, chunks, nil
}

// LocOffset is where entry i's location starts in a locations file with
// packs packs.
func LocOffset(packs uint32, i int64) int64 {
	return int64(LocHeaderSize) + 32*int64(packs) + LocSize*i
}

// Next returns the location of the next index entry; io.EOF after the last.
func (lr *LocReader) Next() (Loc, error) {
	if lr.next == lr.total {
		if _, err := lr.r.ReadByte(); err != io.EOF {
			return Loc{}, badLocs("data after the last location")
		}
		return Loc{}, io.EOF
	}
	if _, err := io.ReadFull(lr.r, lr.buf[:]); err != nil {
		return Loc{}, badLocs("location %d: %v", lr.next, err)
	}
	l := Loc{Pack: binary.LittleEndian.Uint32(lr.buf[:4]), CSize: binary.LittleEndian.Uint32(lr.buf[4:8]),
		Offset: binary.LittleEndian.Uint64(lr.buf[8:])}
	if int(l.Pack) >= len(lr.Packs) || l.CSize == 0 || l.CSize > verify.MaxChunkSize || l.Offset > 1<<50 {
		return Loc{}, badLocs("location %d: pack %d of %d, %d bytes at %d", lr.next, l.Pack, len(lr.Packs), l.CSize, l.Offset)
	}
	lr.next++
	return l, nil
}

// ErrIndex marks a chunk index that does not match its manifest: the
// repository or bundle is broken (it is pinned by a signed digest, so it was
// published that way), and retrying will not help.
var ErrIndex = errors.New("chunk index does not match the manifest")

// ErrLocations marks locations that cannot be read: a transport or mirror
// problem (they are not signed), worth a retry.
var ErrLocations = errors.New("chunk locations are malformed")

func badIndex(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{verify.ErrRejected, ErrIndex}, args...)...)
}

func badLocs(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrLocations}, args...)...)
}
