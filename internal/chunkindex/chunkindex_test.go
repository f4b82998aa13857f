package chunkindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

func testManifest(sizes ...int64) *verify.Manifest {
	m := &verify.Manifest{Schema: verify.SchemaIndexed}
	for i, s := range sizes {
		m.Files = append(m.Files, verify.File{Path: string(rune('a' + i)), Size: s})
	}
	return m
}

func entry(b byte, size uint32) Entry { return Entry{Sum: sha256.Sum256([]byte{b}), Size: size} }

func readAll(t *testing.T, data []byte, m *verify.Manifest) ([]Chunk, error) {
	t.Helper()
	ir, err := NewIndexReader(bytes.NewReader(data), m)
	if err != nil {
		return nil, err
	}
	var out []Chunk
	for {
		c, err := ir.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	files := [][]Entry{{entry(1, 10), entry(2, 5)}, nil, {entry(1, 10)}}
	var buf bytes.Buffer
	if err := WriteIndex(&buf, files); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != IndexSize(3, 3) {
		t.Fatalf("encoded %d bytes, IndexSize says %d", buf.Len(), IndexSize(3, 3))
	}
	m := testManifest(15, 0, 10)
	m.Index = &verify.IndexRef{Chunks: 3}
	got, err := readAll(t, buf.Bytes(), m)
	if err != nil {
		t.Fatal(err)
	}
	want := []Chunk{
		{Entry: files[0][0], Ordinal: 0, File: 0, Offset: 0},
		{Entry: files[0][1], Ordinal: 1, File: 0, Offset: 10},
		{Entry: files[2][0], Ordinal: 2, File: 2, Offset: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d chunks, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chunk %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Each file's section pin is the digest of the index bytes at the offset the
// sizes before it give, so a device can fetch or reuse any one section alone.
func TestSectionsPinTheBytesAtTheirOffsets(t *testing.T) {
	files := [][]Entry{{entry(1, 10), entry(2, 5)}, nil, {entry(3, 10)}, {entry(1, 10)}}
	var buf bytes.Buffer
	if err := WriteIndex(&buf, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes()[:HeaderSize], Header(4, 4)) {
		t.Fatalf("header %x, Header gives %x", buf.Bytes()[:HeaderSize], Header(4, 4))
	}
	secs := Sections(files)
	off := int64(HeaderSize)
	for i, s := range secs {
		if s.Chunks != int64(len(files[i])) {
			t.Fatalf("section %d: %d chunks, want %d", i, s.Chunks, len(files[i]))
		}
		end := off + SectionSize(s.Chunks)
		sum := sha256.Sum256(buf.Bytes()[off:end])
		if got := verify.HexDigest(sum[:]); got != s.SHA256 {
			t.Fatalf("section %d pins %s, the bytes at %d-%d hash to %s", i, s.SHA256, off, end, got)
		}
		off = end
	}
	if off != int64(buf.Len()) {
		t.Fatalf("sections end at %d, the index at %d", off, buf.Len())
	}
	var scanned []verify.FileIndex
	err := ScanSections(bytes.NewReader(buf.Bytes()), func(i int, off, size int64, sum Digest, _ []SegmentAt) {
		if i != len(scanned) || size != SectionSize(int64(len(files[i]))) {
			t.Errorf("ScanSections: section %d of %d bytes at %d, want section %d of %d", i, size, off, len(scanned), SectionSize(int64(len(files[i]))))
		}
		scanned = append(scanned, verify.FileIndex{Chunks: (size - 4) / EntrySize, SHA256: sum.String()})
	})
	if err != nil || len(scanned) != len(secs) {
		t.Fatalf("ScanSections: %d sections, %v", len(scanned), err)
	}
	for i := range secs {
		if scanned[i] != secs[i] {
			t.Fatalf("ScanSections found %+v for section %d, Sections pins %+v", scanned[i], i, secs[i])
		}
	}
	if err := ScanSections(bytes.NewReader(buf.Bytes()[:buf.Len()-1]), func(int, int64, int64, Digest, []SegmentAt) {}); err == nil {
		t.Fatal("ScanSections accepted a truncated index")
	}
	if secs[0].SHA256 == secs[3].SHA256 || secs[2].SHA256 == secs[3].SHA256 {
		t.Fatal("sections of different chunk lists have one digest")
	}
}

func TestIndexRefusals(t *testing.T) {
	enc := func(files [][]Entry) []byte {
		var buf bytes.Buffer
		if err := WriteIndex(&buf, files); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := enc([][]Entry{{entry(1, 10)}})
	cases := []struct {
		name string
		data []byte
		m    *verify.Manifest
		want string
	}{
		{"other magic", append([]byte("NOTANIDX"), good[8:]...), testManifest(10), "magic"},
		{"truncated header", good[:10], testManifest(10), "header"},
		{"file count", good, testManifest(10, 0), "lists 1 files"},
		{"chunks short of the file", good, testManifest(11), "add up to 10"},
		{"chunks past the file", good, testManifest(9), "run past"},
		{"truncated entry", good[:len(good)-3], testManifest(10), "chunk 0"},
		{"trailing data", append(append([]byte{}, good...), 0), testManifest(10), "after its last chunk"},
		{"empty chunk", enc([][]Entry{{entry(1, 0)}}), testManifest(0), "1 to"},
		{"oversized chunk", enc([][]Entry{{entry(1, verify.MaxChunkSize+1)}}), testManifest(verify.MaxChunkSize + 1), "1 to"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, tc.data, tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %q", err, tc.want)
			}
			if !errors.Is(err, ErrIndex) || !errors.Is(err, verify.ErrRejected) {
				t.Fatalf("err = %v: want ErrIndex and verify.ErrRejected", err)
			}
		})
	}
	t.Run("count against the manifest", func(t *testing.T) {
		m := testManifest(10)
		m.Index = &verify.IndexRef{Chunks: 2}
		if _, err := readAll(t, good, m); !errors.Is(err, ErrIndex) {
			t.Fatalf("err = %v, want ErrIndex", err)
		}
	})
}

func TestLocationsRoundTripAndRefusals(t *testing.T) {
	packs := []Digest{sha256.Sum256([]byte("p0")), sha256.Sum256([]byte("p1"))}
	// 300 entries over three blocks: plain chunks one after the other,
	// frames, a change of pack, a chunk used again (an offset back).
	var locs []Loc
	var sizes []uint32
	var off [2]uint64
	for i := range 300 {
		size, pack := uint32(60000+i), uint32(i/100%2)
		csize := size
		if i%7 == 0 {
			csize = size / 3
		}
		l := Loc{Pack: pack, CSize: csize, Offset: off[pack]}
		off[pack] += uint64(csize)
		if i%50 == 49 {
			l, size = locs[3], sizes[3]
		}
		locs, sizes = append(locs, l), append(sizes, size)
	}
	var buf bytes.Buffer
	if err := WriteLocations(&buf, packs, locs, sizes); err != nil {
		t.Fatal(err)
	}
	least, most := LocationsBounds(2, 300)
	if n := int64(buf.Len()); n < least || n > most || n > LocHeadSize(2, 300)+2*300 {
		t.Fatalf("encoded %d bytes; bounds %d–%d, and most entries should take one byte", n, least, most)
	}
	lr, err := NewLocReader(bytes.NewReader(buf.Bytes()), 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Packs) != 2 || lr.Packs[1] != packs[1] || lr.Size() != int64(buf.Len()) {
		t.Fatalf("pack table %v, size %d of %d", lr.Packs, lr.Size(), buf.Len())
	}
	for i, want := range locs {
		got, err := lr.Next(sizes[i])
		if err != nil || got != want {
			t.Fatalf("loc %d = %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := lr.Next(0); err != io.EOF {
		t.Fatalf("after the last: %v, want EOF", err)
	}
	if _, err := NewLocReader(bytes.NewReader(buf.Bytes()), 3); !errors.Is(err, ErrLocations) {
		t.Fatalf("count mismatch: %v", err)
	}
	head := LocHeadSize(2, 300)
	for name, edit := range map[string]func(b []byte) []byte{
		"unknown flag":                  func(b []byte) []byte { b[head] |= 0x80; return b },
		"block without pack and offset": func(b []byte) []byte { b[head] = 0; return b },
		"pack not in the table": func(b []byte) []byte {
			b[head+1] = 9 // the first entry's pack
			return b
		},
		"truncated":       func(b []byte) []byte { return b[:len(b)-1] },
		"data after":      func(b []byte) []byte { return append(b, 0) },
		"an older format": func(b []byte) []byte { b[7] = '1'; return b },
	} {
		b := edit(append([]byte{}, buf.Bytes()...))
		lr, err := NewLocReader(bytes.NewReader(b), 300)
		for i := 0; err == nil; i++ {
			var size uint32
			if i < len(sizes) {
				size = sizes[i]
			}
			_, err = lr.Next(size)
		}
		if !errors.Is(err, ErrLocations) || errors.Is(err, verify.ErrRejected) {
			t.Errorf("%s: %v, want ErrLocations (a transport problem, not a rejection)", name, err)
		}
		if name == "an older format" && !strings.Contains(err.Error(), "publish the version again") {
			t.Errorf("an older format: %v, want it to say what to do", err)
		}
	}
	if err := WriteLocations(io.Discard, packs, []Loc{{Pack: 2, CSize: 1}}, []uint32{1}); err == nil {
		t.Fatal("WriteLocations accepted a location naming a pack not in the table")
	}
	if err := WriteLocations(io.Discard, packs, []Loc{{Pack: 1, CSize: 1}}, nil); err == nil {
		t.Fatal("WriteLocations accepted locations without their sizes")
	}
}

// A plain chunk right after the previous one in its pack takes one byte, a
// frame right after it a few: a fine-tune that changes every chunk pays
// little for its locations.
func TestLocationsOfConsecutiveChunksAreSmall(t *testing.T) {
	const n = 10000
	locs, sizes := make([]Loc, n), make([]uint32, n)
	var off uint64
	for i := range n {
		sizes[i] = 64 << 10
		locs[i] = Loc{CSize: sizes[i], Offset: off}
		off += uint64(sizes[i])
	}
	var plain, frames bytes.Buffer
	WriteLocations(&plain, []Digest{{1}}, locs, sizes)
	off = 0
	for i := range n {
		locs[i] = Loc{CSize: 40 << 10, Offset: off}
		off += 40 << 10
	}
	WriteLocations(&frames, []Digest{{1}}, locs, sizes)
	if per := float64(plain.Len()-int(LocHeadSize(1, n))) / n; per > 1.1 {
		t.Errorf("plain chunks in a row: %.2f bytes an entry, want about 1", per)
	}
	if per := float64(frames.Len()-int(LocHeadSize(1, n))) / n; per > 4.1 {
		t.Errorf("frames in a row: %.2f bytes an entry, want at most 4", per)
	}
}

// A short locations file whose header claims the most packs allowed is
// refused without allocating the table it claims (the file is unsigned).
func TestLocationsHeaderDoesNotAllocateWhatItClaims(t *testing.T) {
	h := []byte(locMagic)
	h = binary.LittleEndian.AppendUint32(h, MaxPacks)
	h = binary.LittleEndian.AppendUint64(h, MaxChunks)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := NewLocReader(bytes.NewReader(h), MaxChunks)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrLocations) {
		t.Fatalf("a header with no pack table: %v, want ErrLocations", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading a 20-byte header allocated %d bytes", grew)
	}
}

// Locations fetched in part: BlockSpan says which bytes hold an entry's
// block, and a reader skips the blocks that are not there.
func TestLocationsInPart(t *testing.T) {
	const n = 3*LocBlock + 5
	packs := []Digest{sha256.Sum256([]byte("p0")), sha256.Sum256([]byte("p1"))}
	locs, sizes := make([]Loc, n), make([]uint32, n)
	var off uint64
	for i := range n {
		sizes[i] = uint32(1000 + i)
		locs[i] = Loc{Pack: uint32(i % 2), CSize: sizes[i] / uint32(1+i%3), Offset: off}
		off += uint64(locs[i].CSize)
	}
	var buf bytes.Buffer
	if err := WriteLocations(&buf, packs, locs, sizes); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	np, c, err := ParseLocHeader(b)
	if err != nil || np != 2 || c != n {
		t.Fatalf("ParseLocHeader: %d packs, %d chunks, %v", np, c, err)
	}
	lr, err := NewLocReader(bytes.NewReader(b), n)
	if err != nil {
		t.Fatal(err)
	}
	head := LocHeadSize(2, n)
	if a, e := lr.BlockSpan(0, n); a != head || e != int64(len(b)) {
		t.Fatalf("BlockSpan of all = %d–%d, want %d–%d", a, e, head, len(b))
	}
	a, e := lr.BlockSpan(LocBlock+3, LocBlock+9) // inside block 1
	if a2, e2 := lr.BlockSpan(LocBlock, 2*LocBlock); a2 != a || e2 != e || a <= head || e >= int64(len(b)) {
		t.Fatalf("BlockSpan(block 1's entries) = %d–%d, of the whole block %d–%d", a, e, a2, e2)
	}
	sparse := make([]byte, len(b)) // only the head and block 1
	copy(sparse, b[:head])
	copy(sparse[a:e], b[a:e])
	lr, err = NewLocReader(bytes.NewReader(sparse), n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range LocBlock + 3 {
		if err := lr.Skip(sizes[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := LocBlock + 3; i < LocBlock+9; i++ {
		if l, err := lr.Next(sizes[i]); err != nil || l != locs[i] {
			t.Fatalf("entry %d after skips: %+v, %v; want %+v", i, l, err, locs[i])
		}
	}
	for i := LocBlock + 9; i < 3*LocBlock; i++ {
		if err := lr.Skip(sizes[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lr.Next(sizes[3*LocBlock]); !errors.Is(err, ErrLocations) {
		t.Fatalf("an entry of a block not fetched (zeros) read as %v, want ErrLocations", err)
	}
	if _, _, err := ParseLocHeader(b[:10]); !errors.Is(err, ErrLocations) {
		t.Fatalf("a short header: %v", err)
	}
}
