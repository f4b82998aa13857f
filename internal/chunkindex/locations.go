package chunkindex

// Locations (little-endian), entry i is the i-th chunk of the index:
//
//	magic   "MSLTLOC2"
//	packs   uint32
//	chunks  uint64            must equal the index's
//	packs × sha256 [32]byte   pack i is <repo>/packs/<hh>/<hex>.pack (PackPath)
//	blocks × uint32           where each block of LocBlock entries ends, in
//	                          bytes from the first entry (⌈chunks / LocBlock⌉)
//	then, per entry:
//	  flags  byte             locPack | locOffset | locCSize, or 0
//	  pack   uvarint          if locPack; else the previous entry's
//	  offset uvarint          if locOffset; else the previous entry's offset + csize
//	  csize  uvarint          if locCSize; else the entry's size (a plain chunk)
//
// A block's first entry has locPack and locOffset, so every block reads on
// its own: a device that needs a few chunks' locations fetches the head
// (header, pack table, block directory) and the blocks that hold them. Most
// entries are one byte (a plain chunk right after the previous one in its
// pack) or four (a zstd frame right after it), where a fixed layout took 16:
// a fine-tune that changes every chunk pays for all of them.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/modelslot/modelslot/verify"
)

const locMagic = "MSLTLOC2"

// LocBlock is the entries of one block of the locations.
const LocBlock = 128

// The flags of an entry: which of its fields are written out.
const (
	locPack   = 1 << 0
	locOffset = 1 << 1
	locCSize  = 1 << 2
)

// maxLocEntry is the most bytes one entry takes: flags, a pack below
// MaxPacks (3 bytes as a uvarint), an offset up to maxPackOffset (8) and a
// csize up to verify.MaxChunkSize (4).
const maxLocEntry = 1 + 3 + 8 + 4

// maxPackOffset bounds where a chunk starts in its pack (1 PiB).
const maxPackOffset = 1 << 50

// Loc is where a repository keeps one chunk.
type Loc struct {
	Pack   uint32 // index into the pack table
	CSize  uint32 // stored bytes (== the chunk's size: stored plain)
	Offset uint64 // in the pack
}

// LocHeaderSize is the bytes of a locations file before its pack table.
const LocHeaderSize = len(locMagic) + 4 + 8

// locBlocks is the blocks of locations of chunks entries.
func locBlocks(chunks int64) int64 { return (chunks + LocBlock - 1) / LocBlock }

// LocHeadSize is the bytes of a locations file before its first entry: the
// header, the pack table and the block directory.
func LocHeadSize(packs uint32, chunks int64) int64 {
	return int64(LocHeaderSize) + 32*int64(packs) + 4*locBlocks(chunks)
}

// LocationsBounds is the least and the most bytes locations of packs packs
// and chunks chunks can take.
func LocationsBounds(packs uint32, chunks int64) (least, most int64) {
	head := LocHeadSize(packs, chunks)
	return head + chunks + 2*locBlocks(chunks), head + maxLocEntry*chunks
}

// WriteLocations encodes the pack table and one Loc per index entry to w;
// sizes are the entries' sizes (the index's), which make a plain chunk's
// csize implicit.
func WriteLocations(w io.Writer, packs []Digest, locs []Loc, sizes []uint32) error {
	if len(packs) > MaxPacks || len(locs) > MaxChunks {
		return fmt.Errorf("chunk locations: %d packs and %d chunks, more than a device accepts (%d, %d)", len(packs), len(locs), MaxPacks, MaxChunks)
	}
	if len(sizes) != len(locs) {
		return fmt.Errorf("chunk locations: %d locations for %d chunk sizes", len(locs), len(sizes))
	}
	entries := make([]byte, 0, 4*len(locs))
	ends := make([]uint32, 0, locBlocks(int64(len(locs))))
	var prev Loc
	for i, l := range locs {
		if int(l.Pack) >= len(packs) {
			return fmt.Errorf("chunk locations: chunk %d names pack %d of %d", i, l.Pack, len(packs))
		}
		if l.CSize == 0 || l.CSize > verify.MaxChunkSize || l.Offset > maxPackOffset {
			return fmt.Errorf("chunk locations: chunk %d: %d bytes at %d, outside what a device accepts", i, l.CSize, l.Offset)
		}
		entries = appendLoc(entries, l, prev, sizes[i], i%LocBlock == 0)
		prev = l
		if (i+1)%LocBlock == 0 || i+1 == len(locs) {
			ends = append(ends, uint32(len(entries)))
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(locMagic)
	var b [12]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(len(packs)))
	binary.LittleEndian.PutUint64(b[4:12], uint64(len(locs)))
	bw.Write(b[:12])
	for _, p := range packs {
		bw.Write(p[:])
	}
	for _, e := range ends {
		bw.Write(binary.LittleEndian.AppendUint32(b[:0], e))
	}
	bw.Write(entries)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write chunk locations: %w", err)
	}
	return nil
}

// appendLoc encodes l after prev; first writes pack and offset out.
func appendLoc(b []byte, l, prev Loc, size uint32, first bool) []byte {
	var flags byte
	if first || l.Pack != prev.Pack {
		flags |= locPack
	}
	if first || l.Offset != prev.Offset+uint64(prev.CSize) {
		flags |= locOffset
	}
	if !Plain(l.CSize, size) {
		flags |= locCSize
	}
	b = append(b, flags)
	if flags&locPack != 0 {
		b = binary.AppendUvarint(b, uint64(l.Pack))
	}
	if flags&locOffset != 0 {
		b = binary.AppendUvarint(b, l.Offset)
	}
	if flags&locCSize != 0 {
		b = binary.AppendUvarint(b, uint64(l.CSize))
	}
	return b
}

// LocReader streams locations, one per index entry, in index order. It
// decodes a block from its first entry once one of the block's entries is
// read with Next; a block whose entries are all skipped is never decoded,
// so a file holding only some blocks (locations fetched in part, zeros
// elsewhere) reads as long as every entry read is in a block it holds.
type LocReader struct {
	r     *bufio.Reader
	Packs []Digest // the pack table
	ends  []uint32 // the block directory
	total uint64
	next  uint64

	block   []byte   // the current block's bytes
	pos     int      // decoded up to here, once decoding
	decode  bool     // an entry of the current block was read
	pending []uint32 // sizes of the block's entries skipped before that
	prev    Loc
}

// NewLocReader reads the header, pack table and block directory of
// locations for an index of chunks entries.
func NewLocReader(r io.Reader, chunks int64) (*LocReader, error) {
	lr := &LocReader{r: bufio.NewReaderSize(r, 64<<10)}
	var h [LocHeaderSize]byte
	if _, err := io.ReadFull(lr.r, h[:]); err != nil {
		return nil, badLocs("header: %v", err)
	}
	packs, total, err := ParseLocHeader(h[:])
	if err != nil {
		return nil, err
	}
	lr.total = total
	if lr.total != uint64(chunks) {
		return nil, badLocs("for %d chunks, the index has %d", lr.total, chunks)
	}
	if packs == 0 && chunks > 0 {
		return nil, badLocs("no packs for %d chunks", chunks)
	}
	// Grown as they are read, not allocated from the header's words: the
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
	blocks := locBlocks(chunks)
	lr.ends = make([]uint32, 0, min(blocks, 1024))
	var b [4]byte
	for i := range blocks {
		if _, err := io.ReadFull(lr.r, b[:]); err != nil {
			return nil, badLocs("block directory: %v", err)
		}
		start := lr.blockStart(int(i))
		end, n := binary.LittleEndian.Uint32(b[:]), lr.blockEntries(int(i))
		if int64(end) < start+n || int64(end) > start+n*maxLocEntry {
			return nil, badLocs("block %d of %d entries ends at byte %d, after %d", i, n, end, start)
		}
		lr.ends = append(lr.ends, end)
	}
	lr.pending = make([]uint32, 0, LocBlock)
	return lr, nil
}

// blockStart is where block i starts, in bytes from the first entry.
func (lr *LocReader) blockStart(i int) int64 {
	if i == 0 {
		return 0
	}
	return int64(lr.ends[i-1])
}

// blockEntries is the entries of block i.
func (lr *LocReader) blockEntries(i int) int64 {
	return min(LocBlock, int64(lr.total)-int64(i)*LocBlock)
}

// Head is the bytes before the first entry (LocHeadSize).
func (lr *LocReader) Head() int64 { return LocHeadSize(uint32(len(lr.Packs)), int64(lr.total)) }

// Size is the bytes of the whole file, as the block directory gives it.
func (lr *LocReader) Size() int64 {
	if len(lr.ends) == 0 {
		return lr.Head()
	}
	return lr.Head() + int64(lr.ends[len(lr.ends)-1])
}

// BlockSpan is the bytes [start, end) of the file that hold the entries of
// index ordinals [first, end): whole blocks, which a reader needs to decode
// any of them.
func (lr *LocReader) BlockSpan(first, end int64) (int64, int64) {
	if first >= end {
		return 0, 0
	}
	a, b := int(first/LocBlock), int((end-1)/LocBlock)
	return lr.Head() + lr.blockStart(a), lr.Head() + int64(lr.ends[b])
}

// enter reads the bytes of the block that starts with the next entry.
func (lr *LocReader) enter() error {
	i := int(lr.next / LocBlock)
	n := int(int64(lr.ends[i]) - lr.blockStart(i))
	if cap(lr.block) < n {
		lr.block = make([]byte, n)
	}
	lr.block = lr.block[:n]
	if _, err := io.ReadFull(lr.r, lr.block); err != nil {
		return badLocs("block %d: %v", i, err)
	}
	lr.pos, lr.decode, lr.pending = 0, false, lr.pending[:0]
	return nil
}

// step moves past the next entry: decoding it when its block is being
// decoded, else noting its size for when it is.
func (lr *LocReader) step(size uint32, read bool) (Loc, error) {
	if lr.next == lr.total {
		return Loc{}, badLocs("more entries than the %d locations", lr.total)
	}
	if lr.next%LocBlock == 0 {
		if err := lr.enter(); err != nil {
			return Loc{}, err
		}
	}
	var l Loc
	if read && !lr.decode {
		lr.decode = true
		base := lr.next - uint64(len(lr.pending))
		for j, s := range lr.pending {
			if _, err := lr.decodeOne(base+uint64(j), s); err != nil {
				return Loc{}, err
			}
		}
	}
	if lr.decode {
		var err error
		if l, err = lr.decodeOne(lr.next, size); err != nil {
			return Loc{}, err
		}
	} else {
		lr.pending = append(lr.pending, size)
	}
	lr.next++
	if lr.decode && (lr.next%LocBlock == 0 || lr.next == lr.total) && lr.pos != len(lr.block) {
		return Loc{}, badLocs("block %d: %d bytes after its last entry", (lr.next-1)/LocBlock, len(lr.block)-lr.pos)
	}
	return l, nil
}

// decodeOne decodes entry ord (of size bytes) at lr.pos.
func (lr *LocReader) decodeOne(ord uint64, size uint32) (Loc, error) {
	if lr.pos >= len(lr.block) {
		return Loc{}, badLocs("location %d: past its block", ord)
	}
	flags := lr.block[lr.pos]
	lr.pos++
	if flags&^(locPack|locOffset|locCSize) != 0 || (ord%LocBlock == 0 && flags&(locPack|locOffset) != locPack|locOffset) {
		return Loc{}, badLocs("location %d: flags %#x", ord, flags)
	}
	l := Loc{Pack: lr.prev.Pack, Offset: lr.prev.Offset + uint64(lr.prev.CSize), CSize: size}
	var err error
	if flags&locPack != 0 {
		var v uint64
		if v, err = lr.uvarint(ord); err == nil {
			l.Pack = uint32(min(v, MaxPacks))
		}
	}
	if err == nil && flags&locOffset != 0 {
		l.Offset, err = lr.uvarint(ord)
	}
	if err == nil && flags&locCSize != 0 {
		var v uint64
		if v, err = lr.uvarint(ord); err == nil {
			l.CSize = uint32(min(v, verify.MaxChunkSize+1))
		}
	}
	if err != nil {
		return Loc{}, err
	}
	if int(l.Pack) >= len(lr.Packs) || l.CSize == 0 || l.CSize > verify.MaxChunkSize || l.Offset > maxPackOffset {
		return Loc{}, badLocs("location %d: pack %d of %d, %d bytes at %d", ord, l.Pack, len(lr.Packs), l.CSize, l.Offset)
	}
	lr.prev = l
	return l, nil
}

func (lr *LocReader) uvarint(ord uint64) (uint64, error) {
	v, n := binary.Uvarint(lr.block[lr.pos:])
	if n <= 0 {
		return 0, badLocs("location %d: a field runs past its block", ord)
	}
	lr.pos += n
	return v, nil
}

// Next returns the location of the next index entry, whose size is size;
// io.EOF after the last.
func (lr *LocReader) Next(size uint32) (Loc, error) {
	if lr.next == lr.total {
		if _, err := lr.r.ReadByte(); err != io.EOF {
			return Loc{}, badLocs("data after the last location")
		}
		return Loc{}, io.EOF
	}
	return lr.step(size, true)
}

// Skip passes over the next index entry's location (of size bytes) without
// reading it, for locations fetched in part: its block need not be there
// unless another of its entries is read.
func (lr *LocReader) Skip(size uint32) error {
	_, err := lr.step(size, false)
	return err
}

// ParseLocHeader reads the pack and chunk counts of a locations file from
// its first LocHeaderSize bytes.
func ParseLocHeader(b []byte) (packs uint32, chunks uint64, err error) {
	if len(b) < LocHeaderSize || string(b[:8]) != locMagic {
		if len(b) >= 8 && string(b[:7]) == locMagic[:7] {
			return 0, 0, badLocs("locations format %q, this modelslot reads %q: publish the version again with this modelslot", b[:8], locMagic)
		}
		return 0, 0, badLocs("not modelslot chunk locations")
	}
	packs, chunks = binary.LittleEndian.Uint32(b[8:12]), binary.LittleEndian.Uint64(b[12:20])
	if packs > MaxPacks || chunks > MaxChunks {
		return 0, 0, badLocs("%d packs for %d chunks: more than a device accepts (%d, %d)", packs, chunks, MaxPacks, MaxChunks)
	}
	return packs, chunks, nil
}
