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
// Locations: see locations.go.
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

	// EntrySize is the bytes one chunk takes in the index.
	EntrySize = 32 + 4

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
