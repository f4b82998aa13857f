package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
)

// small keeps the tests fast while exercising the same code paths.
var small = Params{Min: 4 << 10, Avg: 8 << 10, Max: 16 << 10}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// chunks cuts data and returns the sha256 of each chunk, checking on the way that
// the chunks join back to data and respect the size bounds.
func chunks(t *testing.T, r io.Reader, p Params, data []byte) []string {
	t.Helper()
	c, err := New(r, p)
	if err != nil {
		t.Fatal(err)
	}
	var sums []string
	var joined []byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) > p.Max || len(ch) == 0 {
			t.Fatalf("chunk of %d bytes outside (0, %d]", len(ch), p.Max)
		}
		if len(joined)+len(ch) < len(data) && len(ch) < p.Min {
			t.Fatalf("chunk of %d bytes before the end, Min is %d", len(ch), p.Min)
		}
		joined = append(joined, ch...)
		s := sha256.Sum256(ch)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("chunks do not join back to the input")
	}
	return sums
}

func TestChunksJoinBackAndRespectBounds(t *testing.T) {
	data := randomBytes(1<<20, 1)
	sums := chunks(t, bytes.NewReader(data), small, data)
	avg := len(data) / len(sums)
	if avg < small.Min || avg > small.Max*3/4 {
		t.Fatalf("average chunk %d bytes, want near %d", avg, small.Avg)
	}
}

func TestCutPointsIgnoreHowTheReaderSplitsReads(t *testing.T) {
	data := randomBytes(300<<10, 2)
	whole := chunks(t, bytes.NewReader(data), small, data)
	trickle := chunks(t, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(data))), small, data)
	if !slices.Equal(whole, trickle) {
		t.Fatal("cut points depend on read sizes")
	}
}

func TestInsertionChangesOnlyNearbyChunks(t *testing.T) {
	data := randomBytes(2<<20, 3)
	edited := append(append(append([]byte{}, data[:1<<20]...), []byte("an insertion of a few bytes")...), data[1<<20:]...)
	before := chunks(t, bytes.NewReader(data), small, data)
	after := chunks(t, bytes.NewReader(edited), small, edited)
	changed := 0
	old := map[string]bool{}
	for _, s := range before {
		old[s] = true
	}
	for _, s := range after {
		if !old[s] {
			changed++
		}
	}
	// The chunk holding the insertion changes; at most one more as the cut
	// re-synchronises. Fixed-size blocks would change every block after it.
	if changed == 0 || changed > 2 {
		t.Fatalf("%d of %d chunks changed after one insertion, want 1 or 2", changed, len(after))
	}
}

func TestEmptyAndTinyStreams(t *testing.T) {
	if got := chunks(t, bytes.NewReader(nil), small, nil); len(got) != 0 {
		t.Fatalf("empty stream gave %d chunks", len(got))
	}
	tiny := []byte("tiny")
	if got := chunks(t, bytes.NewReader(tiny), small, tiny); len(got) != 1 {
		t.Fatalf("tiny stream gave %d chunks, want 1", len(got))
	}
}

func TestReadErrorIsReturned(t *testing.T) {
	c, _ := New(iotest.ErrReader(io.ErrUnexpectedEOF), small)
	if _, err := c.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("Next = %v, want the reader's error", err)
	}
}

func TestBadParamsRefused(t *testing.T) {
	for _, p := range []Params{{Min: 10, Avg: 20, Max: 40}, {Min: 4096, Avg: 3000, Max: 8192}, {Min: 4096, Avg: 8192, Max: 4096}} {
		if _, err := New(nil, p); err == nil {
			t.Errorf("New(%+v) accepted bad parameters", p)
		}
	}
}

// TestDefaultCutPointsAreStable pins the cut points of the default parameters:
// a change would re-address every chunk of every published repository.
func TestDefaultCutPointsAreStable(t *testing.T) {
	data := randomBytes(1<<20, 4)
	sizes := defaultSizes(data)
	want := []int{104881, 99086, 71954, 74646, 67126, 15909, 17588, 68254, 45695, 74577, 89487, 67773, 68075, 12577, 9271, 73258, 13162, 44335, 30922}
	if !slices.Equal(sizes, want) {
		t.Fatalf("default cut points changed: got %v, want %v", sizes, want)
	}
}

func defaultSizes(data []byte) []int {
	c, _ := New(bytes.NewReader(data), Default)
	var sizes []int
	for {
		ch, err := c.Next()
		if err != nil {
			return sizes
		}
		sizes = append(sizes, len(ch))
	}
}

// TestDefaultSizeDistribution checks that the gear masks fit the ~64 KiB
// target: with the strict mask (17 bits) before Avg and the loose one (14 bits)
// after, chunks gather around Avg, a third end early, and almost none are cut
// by Max (a cut by Max is not content-defined: it does not resynchronise
// after an insertion).
func TestDefaultSizeDistribution(t *testing.T) {
	sizes := defaultSizes(randomBytes(64<<20, 7))
	var sum, early, atMax int
	for _, s := range sizes {
		sum += s
		if s < Default.Avg {
			early++
		}
		if s == Default.Max {
			atMax++
		}
	}
	n := len(sizes)
	mean := sum / n
	// Expected: mean ≈ 63 KiB; early ≈ 1-(1-2^-17)^(56Ki) ≈ 35%; at Max ≈
	// e^-12 ≈ 0.
	if mean < 56<<10 || mean > 88<<10 {
		t.Errorf("mean chunk %d bytes over %d chunks, want around 64 KiB", mean, n)
	}
	if early*100 < 25*n || early*100 > 45*n {
		t.Errorf("%d of %d chunks end before Avg, want about 35%%", early, n)
	}
	if atMax*100 > n {
		t.Errorf("%d of %d chunks cut at Max, want almost none", atMax, n)
	}
}

// An insertion near the start of a default-chunked stream changes one or two
// chunks of 64 KiB, not the rest of the stream.
func TestDefaultInsertionCostsAboutOneChunk(t *testing.T) {
	data := randomBytes(16<<20, 8)
	edited := append(append(append([]byte{}, data[:1<<20]...), make([]byte, 100)...), data[1<<20:]...)
	sums := func(b []byte) []string { return chunks(t, bytes.NewReader(b), Default, b) }
	old := map[string]bool{}
	for _, s := range sums(data) {
		old[s] = true
	}
	changed := 0
	for _, s := range sums(edited) {
		if !old[s] {
			changed++
		}
	}
	if changed == 0 || changed > 2 {
		t.Fatalf("%d chunks changed after inserting 100 bytes, want 1 or 2", changed)
	}
}

func TestForcedCutsAreBoundaries(t *testing.T) {
	data := randomBytes(200<<10, 5)
	cuts := []int64{50000, 10, 120001, 120002}
	c, _ := New(bytes.NewReader(data), small)
	c.ForceCuts(cuts)
	var off int64
	ends := map[int64]bool{}
	var joined []byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, ch...)
		off += int64(len(ch))
		ends[off] = true
	}
	for _, cut := range cuts {
		if !ends[cut] {
			t.Errorf("no chunk ends at forced cut %d", cut)
		}
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("chunks do not join back to the input")
	}
}

func TestForcedCutsKeepTheRestContentDefined(t *testing.T) {
	// A change inside one region between cuts changes only chunks of that region.
	data := randomBytes(400<<10, 6)
	edited := append([]byte{}, data...)
	copy(edited[150<<10:], "changed")
	cuts := []int64{100 << 10, 200 << 10, 300 << 10}
	sums := func(b []byte) map[string]int64 {
		c, _ := New(bytes.NewReader(b), small)
		c.ForceCuts(cuts)
		out := map[string]int64{}
		var off int64
		for {
			ch, err := c.Next()
			if err != nil {
				return out
			}
			s := sha256.Sum256(ch)
			out[hex.EncodeToString(s[:])] = off
			off += int64(len(ch))
		}
	}
	before, after := sums(data), sums(edited)
	for sum, off := range after {
		if _, ok := before[sum]; !ok && (off < 100<<10 || off >= 200<<10) {
			t.Errorf("chunk at %d changed, outside the edited region [100K, 200K)", off)
		}
	}
}
