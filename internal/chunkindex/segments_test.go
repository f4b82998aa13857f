package chunkindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func entries(n int, seed uint64) []Entry {
	out := make([]Entry, n)
	for i := range out {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], seed)
		binary.LittleEndian.PutUint64(b[8:], uint64(i))
		out[i] = Entry{Sum: sha256.Sum256(b[:]), Size: 65536}
	}
	return out
}

// The segments the publisher pins are the ones a device finds when it scans
// a stored index: same offsets, same digests of the same bytes.
func TestSegmentsOfMatchWhatScanSectionsFinds(t *testing.T) {
	files := [][]Entry{entries(3, 1), entries(5000, 2)}
	var buf bytes.Buffer
	if err := WriteIndex(&buf, files); err != nil {
		t.Fatal(err)
	}
	pins := Sections(files)
	if pins[0].Segments != "" {
		t.Fatal("a 3-chunk file has segments")
	}
	want, err := pins[1].SegmentList()
	if err != nil || len(want) < 5000/SegmentMax {
		t.Fatalf("a 5000-chunk file: %d segments, %v", len(want), err)
	}
	var found []SegmentAt
	err = ScanSections(bytes.NewReader(buf.Bytes()), func(i int, off, size int64, _ Digest, segs []SegmentAt) {
		if i == 1 {
			found = segs
		}
	})
	if err != nil || len(found) != len(want) {
		t.Fatalf("ScanSections found %d segments (%v), the pins list %d", len(found), err, len(want))
	}
	for i, g := range found {
		if g.Chunks != want[i].Chunks || g.Sum != want[i].SHA256 || g.Chunks > SegmentMax {
			t.Fatalf("segment %d: found %d chunks %x, pinned %d %x", i, g.Chunks, g.Sum, want[i].Chunks, want[i].SHA256)
		}
		if sha256.Sum256(buf.Bytes()[g.Off:g.End()]) != g.Sum {
			t.Fatalf("segment %d's digest is not that of the bytes %d-%d", i, g.Off, g.End())
		}
	}
}

// A change in the middle of a file changes only the segments around it:
// the rest keep their pins, which is what lets a device skip them.
func TestSegmentsFallBackIntoStepAfterAChange(t *testing.T) {
	v1 := entries(20000, 3)
	v2 := append(append(append([]Entry{}, v1[:9000]...), entries(7, 4)...), v1[9004:]...) // 4 chunks became 7
	old := map[[32]byte]bool{}
	s1 := SegmentsOf(v1)
	for _, g := range s1 {
		old[g.SHA256] = true
	}
	s2 := SegmentsOf(v2)
	var changed int
	for _, g := range s2 {
		if !old[g.SHA256] {
			changed++
		}
	}
	if changed == 0 || changed > 2 {
		t.Fatalf("%d of %d segments changed after one local change (%d segments before), want 1 or 2", changed, len(s2), len(s1))
	}
}
