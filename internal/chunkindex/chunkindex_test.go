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
	locs := []Loc{{Pack: 0, CSize: 7, Offset: 0}, {Pack: 1, CSize: 9, Offset: 100}}
	var buf bytes.Buffer
	if err := WriteLocations(&buf, packs, locs); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != LocationsSize(2, 2) {
		t.Fatalf("encoded %d bytes, LocationsSize says %d", buf.Len(), LocationsSize(2, 2))
	}
	lr, err := NewLocReader(bytes.NewReader(buf.Bytes()), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Packs) != 2 || lr.Packs[1] != packs[1] {
		t.Fatalf("pack table %v", lr.Packs)
	}
	for i, want := range locs {
		got, err := lr.Next()
		if err != nil || got != want {
			t.Fatalf("loc %d = %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := lr.Next(); err != io.EOF {
		t.Fatalf("after the last: %v, want EOF", err)
	}
	if _, err := NewLocReader(bytes.NewReader(buf.Bytes()), 3); !errors.Is(err, ErrLocations) {
		t.Fatalf("count mismatch: %v", err)
	}
	bad := append([]byte{}, buf.Bytes()...)
	bad[len(bad)-LocSize] = 9 // second location names pack 9
	lr, _ = NewLocReader(bytes.NewReader(bad), 2)
	lr.Next()
	if _, err := lr.Next(); !errors.Is(err, ErrLocations) || errors.Is(err, verify.ErrRejected) {
		t.Fatalf("bad pack number: %v, want ErrLocations (a transport problem, not a rejection)", err)
	}
	if err := WriteLocations(io.Discard, packs, []Loc{{Pack: 2, CSize: 1}}); err == nil {
		t.Fatal("WriteLocations accepted a location naming a pack not in the table")
	}
}

// A short locations file whose header claims the most packs allowed is
// refused without allocating the table it claims (the file is unsigned).
func TestLocationsHeaderDoesNotAllocateWhatItClaims(t *testing.T) {
	h := []byte(locMagic)
	h = binary.LittleEndian.AppendUint32(h, MaxPacks)
	h = binary.LittleEndian.AppendUint64(h, MaxPacks)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := NewLocReader(bytes.NewReader(h), MaxPacks)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrLocations) {
		t.Fatalf("a header with no pack table: %v, want ErrLocations", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading a 20-byte header allocated %d bytes", grew)
	}
}

// Locations fetched in part: the header says where entry i is, and a reader
// skips the entries that are not there.
func TestLocationsInPart(t *testing.T) {
	packs := []Digest{sha256.Sum256([]byte("p0")), sha256.Sum256([]byte("p1"))}
	locs := []Loc{{0, 10, 0}, {0, 11, 10}, {1, 12, 0}, {1, 13, 12}, {0, 14, 21}}
	var buf bytes.Buffer
	if err := WriteLocations(&buf, packs, locs); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	np, n, err := ParseLocHeader(b)
	if err != nil || np != 2 || n != 5 {
		t.Fatalf("ParseLocHeader: %d packs, %d chunks, %v", np, n, err)
	}
	if LocOffset(np, 5) != int64(len(b)) {
		t.Fatalf("LocOffset(2, 5) = %d, the file has %d bytes", LocOffset(np, 5), len(b))
	}
	sparse := make([]byte, len(b)) // only the header, the pack table and entry 3
	copy(sparse, b[:LocOffset(np, 0)])
	copy(sparse[LocOffset(np, 3):], b[LocOffset(np, 3):LocOffset(np, 4)])
	lr, err := NewLocReader(bytes.NewReader(sparse), 5)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := lr.Skip(); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := lr.Next(); err != nil || l != locs[3] {
		t.Fatalf("entry 3 after three skips: %+v, %v; want %+v", l, err, locs[3])
	}
	if _, err := lr.Next(); !errors.Is(err, ErrLocations) {
		t.Fatalf("an entry not fetched (zeros) read as %v, want ErrLocations", err)
	}
	if _, _, err := ParseLocHeader(b[:10]); !errors.Is(err, ErrLocations) {
		t.Fatalf("a short header: %v", err)
	}
}
