package chunkindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

// FuzzIndexAndLocations feeds hostile bytes to both readers: they must end
// (an error or io.EOF) without a panic, yield only chunks that stay inside
// their file, and call a malformed index ErrIndex and malformed locations
// ErrLocations, never anything else.
func FuzzIndexAndLocations(f *testing.F) {
	var good bytes.Buffer
	WriteIndex(&good, [][]Entry{{{Sum: sha256.Sum256([]byte("a")), Size: 10}}, nil, {{Sum: sha256.Sum256([]byte("b")), Size: 5}}})
	var locs bytes.Buffer
	WriteLocations(&locs, []Digest{sha256.Sum256([]byte("p"))}, []Loc{{CSize: 3}, {CSize: 4, Offset: 3}, {CSize: 5, Offset: 20}}, []uint32{3, 9, 5})
	f.Add(good.Bytes(), uint16(10), uint16(0), uint16(5), locs.Bytes())
	f.Add(good.Bytes()[:20], uint16(10), uint16(0), uint16(5), locs.Bytes()[:30])
	f.Fuzz(func(t *testing.T, idx []byte, s0, s1, s2 uint16, loc []byte) {
		m := &verify.Manifest{Files: []verify.File{{Size: int64(s0)}, {Size: int64(s1)}, {Size: int64(s2)}}}
		ir, err := NewIndexReader(bytes.NewReader(idx), m)
		if err == nil {
			for n := 0; ; n++ {
				c, err := ir.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, ErrIndex) {
						t.Fatalf("index error not ErrIndex: %v", err)
					}
					break
				}
				if c.File < 0 || c.File >= len(m.Files) || c.Offset+int64(c.Size) > m.Files[c.File].Size || c.Size == 0 {
					t.Fatalf("chunk %+v outside its file (sizes %d %d %d)", c, s0, s1, s2)
				}
				if n > len(idx)/EntrySize {
					t.Fatalf("more chunks (%d) than %d bytes can hold", n, len(idx))
				}
			}
		} else if !errors.Is(err, ErrIndex) {
			t.Fatalf("index header error not ErrIndex: %v", err)
		}
		end := int64(HeaderSize)
		err = ScanSections(bytes.NewReader(idx), func(i int, off, size int64, _ Digest, segs []SegmentAt) {
			if off != end || size < 4 || off+size > int64(len(idx)) {
				t.Fatalf("ScanSections: section %d at %d of %d bytes, in an index of %d (the last ended at %d)", i, off, size, len(idx), end)
			}
			at := off + 4
			for _, g := range segs {
				if g.Off != at || g.Chunks == 0 || g.Chunks > SegmentMax {
					t.Fatalf("ScanSections: section %d: segment %+v, want one starting at %d", i, g, at)
				}
				at = g.End()
			}
			if at != off+size {
				t.Fatalf("ScanSections: section %d's segments end at %d, the section at %d", i, at, off+size)
			}
			end = off + size
		})
		if err != nil && !errors.Is(err, ErrIndex) {
			t.Fatalf("ScanSections error not ErrIndex: %v", err)
		}
		var chunks int64
		if len(loc) >= 20 {
			chunks = int64(binary.LittleEndian.Uint64(loc[12:20]) % (1 << 20)) // the count a header claims, bounded
		}
		lr, err := NewLocReader(bytes.NewReader(loc), chunks)
		if err != nil {
			if !errors.Is(err, ErrLocations) {
				t.Fatalf("locations error not ErrLocations: %v", err)
			}
			return
		}
		for i := 0; ; i++ {
			size := uint32(s0)%3 + uint32(i) // some entries skipped, sizes that vary
			if i%3 == int(s1%3) {
				if err := lr.Skip(size); err != nil && !errors.Is(err, ErrLocations) {
					t.Fatalf("locations error not ErrLocations: %v", err)
				} else if err != nil {
					return
				}
				continue
			}
			l, err := lr.Next(size)
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrLocations) {
					t.Fatalf("locations error not ErrLocations: %v", err)
				}
				return
			}
			if int(l.Pack) >= len(lr.Packs) || l.CSize == 0 {
				t.Fatalf("location %+v outside its %d packs", l, len(lr.Packs))
			}
		}
	})
}
