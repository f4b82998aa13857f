package bundle_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// entry2 is one tar entry of a format-2 bundle under construction.
type entry2 struct {
	name string
	data []byte
}

// makeBundle2 writes a minimal format-2 bundle (FORMAT2.md) with chunkindex
// and archive/tar, not the publisher: two files sharing a chunk, 32 KiB
// chunks, data.pack in order of first use. edit may change the entries
// before they are written.
func makeBundle2(t *testing.T, k *verify.PrivateKey, edit func(m *verify.Manifest, es []entry2) []entry2) []byte {
	t.Helper()
	a := randomData(96<<10, 1)
	b := append(append([]byte{}, a[:32<<10]...), randomData(40<<10, 2)...) // b's first chunk is a's
	enc, _ := zstd.NewWriter(nil)
	m := &verify.Manifest{Schema: verify.SchemaIndexed, Model: "demo", Version: "v1", Sequence: 1}
	var pack bytes.Buffer
	where := map[chunkindex.Digest]chunkindex.Loc{}
	var index [][]chunkindex.Entry
	var locs []chunkindex.Loc
	var sizes []uint32
	for _, f := range []struct {
		name string
		data []byte
	}{{"a.bin", a}, {"b.bin", b}} {
		sum := sha256.Sum256(f.data)
		m.Files = append(m.Files, verify.File{Path: f.name, Size: int64(len(f.data)), Mode: 0o644, SHA256: hex.EncodeToString(sum[:])})
		var es []chunkindex.Entry
		for off := 0; off < len(f.data); off += 32 << 10 {
			c := f.data[off:min(off+32<<10, len(f.data))]
			d := chunkindex.Digest(sha256.Sum256(c))
			l, ok := where[d]
			if !ok {
				z := enc.EncodeAll(c, nil)
				l = chunkindex.Loc{CSize: uint32(len(z)), Offset: uint64(pack.Len())}
				pack.Write(z)
				where[d] = l
			}
			es = append(es, chunkindex.Entry{Sum: d, Size: uint32(len(c))})
			locs = append(locs, l)
			sizes = append(sizes, uint32(len(c)))
		}
		index = append(index, es)
	}
	var ib, lb bytes.Buffer
	chunkindex.WriteIndex(&ib, index)
	chunkindex.WriteLocations(&lb, []chunkindex.Digest{sha256.Sum256(pack.Bytes())}, locs, sizes)
	sum := sha256.Sum256(ib.Bytes())
	m.Index = &verify.IndexRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(ib.Len()), Chunks: int64(len(locs))}
	es := []entry2{{bundle.IndexName, ib.Bytes()}, {bundle.LocationsName, lb.Bytes()}, {bundle.PackName, pack.Bytes()}}
	if edit != nil {
		es = edit(m, es)
	}
	env, err := verify.SignManifest(m, k)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range append([]entry2{{bundle.EnvelopeName, env}}, es...) {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
		tw.Write(e.data)
	}
	tw.Close()
	return out.Bytes()
}

func randomData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) * 2654435761
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// readAll2 reads a format-2 bundle's entries in order, to the end.
func readAll2(r *bundle.Reader) error {
	ix, err := r.Index()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, ix); err != nil {
		return err
	}
	loc, err := r.Locations()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, loc); err != nil {
		return err
	}
	p, _, err := r.Pack()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, p); err != nil {
		return err
	}
	return r.End()
}

func open2(t *testing.T, b []byte, k *verify.PrivateKey) *bundle.Reader {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b), verify.NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFormat2BundleReadsInOrderFromAPipe(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle2(t, k, nil)
	pr, pw := io.Pipe()
	go func() { pw.Write(b); pw.Close() }()
	r, err := bundle.NewReader(pr, verify.NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll2(r); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil {
		t.Fatal("Next on a format-2 bundle did not fail")
	}
}

func TestFormat2BundleHostile(t *testing.T) {
	k := testKey(t, 1)
	cases := []struct {
		name string
		edit func(m *verify.Manifest, es []entry2) []entry2
		cut  int // bytes cut off the end of the stream
		want string
	}{
		{"wrong index digest", func(m *verify.Manifest, es []entry2) []entry2 {
			es[0].data = append([]byte{}, es[0].data...)
			es[0].data[len(es[0].data)-1] ^= 1
			return es
		}, 0, "the manifest pins"},
		{"index of another size", func(m *verify.Manifest, es []entry2) []entry2 {
			es[0].data = append(es[0].data, 0)
			return es
		}, 0, "index.idx is"},
		{"reordered", func(m *verify.Manifest, es []entry2) []entry2 {
			return []entry2{es[1], es[0], es[2]}
		}, 0, "want index.idx"},
		{"pack before locations", func(m *verify.Manifest, es []entry2) []entry2 {
			return []entry2{es[0], es[2], es[1]}
		}, 0, "want locations.loc"},
		{"oversized locations", func(m *verify.Manifest, es []entry2) []entry2 {
			_, most := chunkindex.LocationsBounds(1, m.Index.Chunks)
			es[1].data = append(es[1].data, make([]byte, most+1-int64(len(es[1].data)))...)
			return es
		}, 0, "locations of"},
		{"oversized pack", func(m *verify.Manifest, es []entry2) []entry2 {
			es[2].data = make([]byte, m.Index.Chunks*verify.MaxChunkSize+1)
			return es
		}, 0, "more than"},
		{"an entry after the pack", func(m *verify.Manifest, es []entry2) []entry2 {
			return append(es, entry2{"chunks/x.zst", []byte("x")})
		}, 0, "after data.pack"},
		{"truncated in the pack", nil, 1024 + 2048, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := makeBundle2(t, k, c.edit)
			r := open2(t, b[:len(b)-c.cut], k)
			err := readAll2(r)
			if !errors.Is(err, verify.ErrRejected) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a rejection mentioning %q", err, c.want)
			}
		})
	}
}
