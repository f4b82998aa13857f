package chunkindex

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/modelslot/modelslot/verify"
)

// Segments divide a large file's section into content-defined runs of
// entries, each pinned by the manifest (verify.FileIndex.Segments), so a
// change in the middle of a 20 GiB GGUF file costs the device the few
// segments around it, not the file's whole section (megabytes).
//
// A segment ends after an entry whose digest's first two bytes, read as a
// little-endian uint16, are below segmentCut (one entry in SegmentAvg), or
// when it reaches SegmentMax entries. The rule looks at one entry only, so
// after a change the segments fall back into step with the old version's as
// soon as the chunks do: the segments of unchanged regions keep their pins.
const (
	SegmentAvg = 128  // entries a segment has on average (about 9 MiB of a file)
	SegmentMax = 1024 // entries a segment has at most
	segmentCut = 1 << 16 / SegmentAvg
)

// SegmentAt is a segment of a stored index: its first entry's offset in
// the index, its entries and the sha256 of their bytes.
type SegmentAt struct {
	Off    int64
	Chunks uint32
	Sum    Digest
}

// End is the offset after the segment's last entry.
func (s SegmentAt) End() int64 { return s.Off + EntrySize*int64(s.Chunks) }

// segmenter cuts a file's entries, given as their encoded bytes, into segments.
type segmenter struct {
	off   int64 // of the next entry
	start int64 // of the current segment
	n     uint32
	h     hash.Hash
	out   []SegmentAt
}

func newSegmenter(off int64) *segmenter {
	return &segmenter{off: off, start: off, h: sha256.New()}
}

// add takes the next entry (EntrySize encoded bytes).
func (s *segmenter) add(b []byte) {
	s.h.Write(b)
	s.n++
	s.off += EntrySize
	if binary.LittleEndian.Uint16(b[:2]) < segmentCut || s.n == SegmentMax {
		s.cut()
	}
}

// cut ends the current segment (if it has entries) and returns them all.
func (s *segmenter) cut() []SegmentAt {
	if s.n > 0 {
		seg := SegmentAt{Off: s.start, Chunks: s.n}
		s.h.Sum(seg.Sum[:0])
		s.out = append(s.out, seg)
		s.h.Reset()
		s.n, s.start = 0, s.off
	}
	return s.out
}

// SegmentsOf is the segments of one file's entries, as the manifest pins
// them; nil when the file is one segment (its section pin covers it).
func SegmentsOf(entries []Entry) []verify.IndexSegment {
	s := newSegmenter(0)
	var b [EntrySize]byte
	for _, e := range entries {
		s.add(encodeEntry(b[:], e))
	}
	segs := s.cut()
	if len(segs) < 2 {
		return nil
	}
	out := make([]verify.IndexSegment, len(segs))
	for i, g := range segs {
		out[i] = verify.IndexSegment{Chunks: g.Chunks, SHA256: g.Sum}
	}
	return out
}
