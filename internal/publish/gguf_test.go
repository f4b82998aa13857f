package publish

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// ggufFile is a GGUF file to write in tests: metadata, then tensors of F32
// (type 0) or Q8_0 (type 8) data.
type ggufFile struct {
	version uint32
	align   uint32 // 0: no general.alignment key (the default, 32)
	meta    []ggufKV
	tensors []ggufTestTensor
}

type ggufKV struct {
	key string
	typ uint32
	val any // uint32, string, []string, []uint32, float32
}

type ggufTestTensor struct {
	name string
	typ  uint32
	dims []uint64
	data []byte
}

func putStr(b *bytes.Buffer, s string) {
	binary.Write(b, binary.LittleEndian, uint64(len(s)))
	b.WriteString(s)
}

func putValue(b *bytes.Buffer, typ uint32, v any) {
	le := binary.LittleEndian
	switch typ {
	case ggufString:
		putStr(b, v.(string))
	case ggufArray:
		switch a := v.(type) {
		case []string:
			binary.Write(b, le, uint32(ggufString))
			binary.Write(b, le, uint64(len(a)))
			for _, s := range a {
				putStr(b, s)
			}
		case []uint32:
			binary.Write(b, le, uint32(ggufUint32))
			binary.Write(b, le, uint64(len(a)))
			binary.Write(b, le, a)
		}
	default:
		binary.Write(b, le, v)
	}
}

// bytes encodes the file; it also returns each tensor's data offset in the file.
func (g ggufFile) bytes() ([]byte, []int64) {
	le := binary.LittleEndian
	var b bytes.Buffer
	b.WriteString(ggufMagic)
	binary.Write(&b, le, g.version)
	binary.Write(&b, le, uint64(len(g.tensors)))
	meta := g.meta
	align := uint64(ggufDefaultAlign)
	if g.align != 0 {
		meta = append([]ggufKV{{"general.alignment", ggufUint32, g.align}}, meta...)
		align = uint64(g.align)
	}
	binary.Write(&b, le, uint64(len(meta)))
	for _, kv := range meta {
		putStr(&b, kv.key)
		binary.Write(&b, le, kv.typ)
		putValue(&b, kv.typ, kv.val)
	}
	var off uint64
	rel := make([]uint64, len(g.tensors))
	for i, t := range g.tensors {
		putStr(&b, t.name)
		binary.Write(&b, le, uint32(len(t.dims)))
		binary.Write(&b, le, t.dims)
		binary.Write(&b, le, t.typ)
		binary.Write(&b, le, off)
		rel[i] = off
		off = (off + uint64(len(t.data)) + align - 1) / align * align
	}
	pad := func() {
		for uint64(b.Len())%align != 0 {
			b.WriteByte(0)
		}
	}
	pad()
	start := int64(b.Len())
	offsets := make([]int64, len(g.tensors))
	for i, t := range g.tensors {
		offsets[i] = start + int64(rel[i])
		b.Write(t.data)
		pad()
	}
	return b.Bytes(), offsets
}

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 5))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testGGUF is a small llama-like file: a vocabulary array, a few scalars, and
// tensors of F32 and Q8_0 (34 bytes per 32 elements) with sizes that are not
// multiples of the alignment, so padding sits between them.
func testGGUF(version, align uint32, vocab int) ggufFile {
	words := make([]string, vocab)
	for i := range words {
		words[i] = string(rune('a'+i%26)) + string(rune('a'+i/26%26))
	}
	g := ggufFile{version: version, align: align, meta: []ggufKV{
		{"general.architecture", ggufString, "llama"},
		{"llama.block_count", ggufUint32, uint32(2)},
		{"llama.rope.freq_base", ggufFloat32, float32(10000)},
		{"tokenizer.ggml.tokens", ggufArray, words},
		{"tokenizer.ggml.token_type", ggufArray, make([]uint32, vocab)},
	}}
	for i, n := range []int{40_000, 300_000 / 32, 50_000, 1000} {
		t := ggufTestTensor{name: "blk." + string(rune('0'+i)) + ".weight", typ: 0, dims: []uint64{uint64(n)}, data: randomData(uint64(i), 4*n)}
		if i == 1 {
			t.typ, t.dims, t.data = 8, []uint64{32, uint64(n)}, randomData(uint64(i), 34*n)
		}
		g.tensors = append(g.tensors, t)
	}
	return g
}

func TestGGUFCutsAreTheTensorBoundaries(t *testing.T) {
	for _, c := range []struct {
		version, align uint32
	}{{3, 0}, {2, 0}, {3, 64}, {3, 4096}} {
		g := testGGUF(c.version, c.align, 500)
		data, offsets := g.bytes()
		cuts := ggufCuts(bytes.NewReader(data), int64(len(data)))
		var want []int64
		want = append(want, offsets[0]) // the data section's start is the first tensor's
		for i, tn := range g.tensors {
			want = append(want, offsets[i], offsets[i]+int64(len(tn.data)))
		}
		want = slices.DeleteFunc(want, func(o int64) bool { return o >= int64(len(data)) })
		slices.Sort(cuts)
		slices.Sort(want)
		if !slices.Equal(slices.Compact(cuts), slices.Compact(want)) {
			t.Errorf("v%d align %d: cuts %v, want the tensor starts and ends %v", c.version, c.align, cuts, want)
		}
	}
}

// A header that does not parse gives no cuts, and a hostile count or length
// is refused without allocating what it claims.
func TestGGUFHeaderThatDoesNotParseGivesNoCuts(t *testing.T) {
	good, _ := testGGUF(3, 0, 50).bytes()
	le := binary.LittleEndian
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":            nil,
		"version 1":        edit(func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }),
		"version 4":        edit(func(b []byte) []byte { le.PutUint32(b[4:], 4); return b }),
		"2^63 tensors":     edit(func(b []byte) []byte { le.PutUint64(b[8:], 1<<63); return b }),
		"2^60 metadata":    edit(func(b []byte) []byte { le.PutUint64(b[16:], 1<<60); return b }),
		"truncated header": good[:200],
		"key of 2^62 bytes": edit(func(b []byte) []byte {
			le.PutUint64(b[24:], 1<<62)
			return b
		}),
		"bad alignment": func() []byte { d, _ := testGGUF(3, 48, 50).bytes(); return d }(),
		"array of 2^62 strings": func() []byte {
			g := testGGUF(3, 0, 50)
			g.meta = []ggufKV{{"x", ggufArray, []string{"a"}}}
			d, _ := g.bytes()
			i := bytes.Index(d, []byte{'x', ggufArray, 0, 0, 0, ggufString, 0, 0, 0})
			le.PutUint64(d[i+9:], 1<<62)
			return d
		}(),
	}
	for name, data := range cases {
		if cuts := ggufCuts(bytes.NewReader(data), int64(len(data))); cuts != nil {
			t.Errorf("%s: cuts %v, want none", name, cuts)
		}
	}
	allocs := testing.AllocsPerRun(3, func() {
		ggufCuts(bytes.NewReader(cases["2^63 tensors"]), int64(len(good)))
	})
	if allocs > 20 {
		t.Errorf("a hostile tensor count made %v allocations", allocs)
	}
}

// TestGGUFGrownMetadataAndOneChangedTensorReuseTheRest: v2 of a GGUF model has
// a larger vocabulary (every tensor moves in the file) and one changed tensor;
// every chunk of the other tensors is one the repository already has.
func TestGGUFGrownMetadataAndOneChangedTensorReuseTheRest(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	g := testGGUF(3, 0, 500)
	name := filepath.Join(dir, "model.gguf")
	data, _ := g.bytes()
	write(t, dir, "model.gguf", data)
	if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err != nil {
		t.Fatal(err)
	}
	g2 := testGGUF(3, 0, 900) // the header grows by a few KiB
	g2.tensors[2].data = randomData(99, len(g.tensors[2].data))
	data2, offsets := g2.bytes()
	write(t, dir, "model.gguf", data2)
	v2, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	header := int64(offsets[0])
	changed := int64(len(g2.tensors[2].data))
	// New bytes: the header (with the padding up to the data section) and the
	// changed tensor, nothing of the three others.
	if v2.NewBytes > header+changed+64 || v2.NewBytes < changed {
		t.Fatalf("v2 stored %d uncompressed bytes of new chunks; the header is %d and the changed tensor %d",
			v2.NewBytes, header, changed)
	}
	cuts := tensorCuts(name)
	for i, tn := range g2.tensors {
		if end := offsets[i] + int64(len(tn.data)); !slices.Contains(cuts, offsets[i]) || (end < int64(len(data2)) && !slices.Contains(cuts, end)) {
			t.Fatalf("the publisher's cuts %v miss tensor %d at [%d, %d)", cuts, i, offsets[i], end)
		}
	}
	mustInstallable(t, repo, v2.Manifest, dir)
}

// FuzzGGUFCuts feeds arbitrary headers to the GGUF parser: no panic, and every
// cut is inside the file.
func FuzzGGUFCuts(f *testing.F) {
	good, _ := testGGUF(3, 64, 20).bytes()
	f.Add(good[:2048])
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range ggufCuts(bytes.NewReader(data), int64(len(data))) {
			if c <= 0 || c >= int64(len(data)) {
				t.Fatalf("cut %d outside a file of %d bytes", c, len(data))
			}
		}
	})
}

// TestBrokenGGUFIsPublishedWithPlainChunks: a file that starts like GGUF but
// whose header lies is published all the same, with content-defined chunks;
// a GGUF file is recognised by its magic, whatever its name.
func TestBrokenGGUFIsPublishedWithPlainChunks(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	good, offsets := testGGUF(3, 0, 50).bytes()
	broken := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(broken[8:], 1<<40) // tensor count
	write(t, dir, "broken.gguf", broken)
	write(t, dir, "weights.bin", good)
	res, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatalf("publish of a broken GGUF header: %v", err)
	}
	mustInstallable(t, repo, res.Manifest, dir)
	if cuts := tensorCuts(filepath.Join(dir, "broken.gguf")); cuts != nil {
		t.Fatalf("cuts %v in a broken header", cuts)
	}
	if cuts := tensorCuts(filepath.Join(dir, "weights.bin")); !slices.Contains(cuts, offsets[1]) {
		t.Fatalf("a GGUF file named weights.bin got cuts %v, want its tensors' (%v)", cuts, offsets)
	}
}
