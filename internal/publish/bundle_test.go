package publish

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// untar returns a bundle's entries in order.
func untar(t *testing.T, b []byte) (names []string, bodies [][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Format != tar.FormatUSTAR || h.Typeflag != tar.TypeReg || !h.ModTime.Equal(epoch) {
			t.Fatalf("entry %s: %v, type %c, time %v: want ustar regular files at the epoch", h.Name, h.Format, h.Typeflag, h.ModTime)
		}
		body, _ := io.ReadAll(tr)
		names, bodies = append(names, h.Name), append(bodies, body)
	}
}

// TestBundleIsFormat2: a model whose two files share every chunk; the bundle
// holds the manifest, its index, locations into the one pack that follows, and
// that pack with every distinct chunk once, in order of first use.
func TestBundleIsFormat2(t *testing.T) {
	k, dir := testKey(t), t.TempDir()
	w := randomData(1, 300<<10)
	write(t, dir, "a.bin", w)
	write(t, dir, "b.bin", w)
	out := filepath.Join(t.TempDir(), "m"+bundle.Ext)
	res, err := CreateBundle(context.Background(), out, dir, Options{Model: "demo", Version: "v1", Key: k, Params: testParams})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	names, bodies := untar(t, b)
	if !slices.Equal(names, []string{bundle.EnvelopeName, BundleIndexName, BundleLocationsName, BundlePackName}) {
		t.Fatalf("entries %v", names)
	}
	m, err := verify.OpenManifest(bodies[0], verify.NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(bodies[1]); int64(len(bodies[1])) != m.Index.Size || verify.HexDigest(sum[:]) != m.Index.SHA256 {
		t.Fatal("index.idx is not the index the manifest pins")
	}
	ir, err := chunkindex.NewIndexReader(bytes.NewReader(bodies[1]), m)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := chunkindex.NewLocReader(bytes.NewReader(bodies[2]), ir.Total())
	if err != nil {
		t.Fatal(err)
	}
	pack := bodies[3]
	if len(lr.Packs) != 1 || lr.Packs[0] != sha256.Sum256(pack) {
		t.Fatalf("locations name packs %v; want exactly data.pack's digest", lr.Packs)
	}
	dec, _ := zstd.NewReader(nil)
	first := map[chunkindex.Digest]chunkindex.Loc{}
	var end uint64
	for {
		c, err := ir.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		l, err := lr.Next(c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if prev, seen := first[c.Sum]; seen {
			if l != prev {
				t.Fatalf("chunk %d, a later use, at %+v; its first use is at %+v", c.Ordinal, l, prev)
			}
			continue
		}
		if l.Offset != end { // first uses tile data.pack in index order
			t.Fatalf("first use of chunk %d at %d, want %d", c.Ordinal, l.Offset, end)
		}
		first[c.Sum], end = l, end+uint64(l.CSize)
		data, err := pack[l.Offset:end], error(nil)
		if !chunkindex.Plain(l.CSize, c.Size) {
			data, err = dec.DecodeAll(data, nil)
		}
		if err != nil || sha256.Sum256(data) != c.Sum {
			t.Fatalf("chunk %d does not decompress to its digest (%v)", c.Ordinal, err)
		}
	}
	if end != uint64(len(pack)) || len(first) != res.Chunks || int(ir.Total()) != 2*res.Chunks {
		t.Fatalf("data.pack: %d bytes, chunks end at %d; %d distinct chunks of %d uses, publish says %d", len(pack), end, len(first), ir.Total(), res.Chunks)
	}
	var again bytes.Buffer
	if err := WriteBundle(context.Background(), &again, filepath.Dir(out), "demo", "v1"); err == nil {
		t.Fatal("the temporary repository of CreateBundle was left behind")
	}
}

func TestBundleIsDeterministic(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := WriteBundle(context.Background(), &a, repo, "demo", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(context.Background(), &b, repo, "demo", "v1"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two bundles of the same version differ")
	}
}

// TestBundleRefusesADamagedChunk: a bundle never carries a chunk that does
// not match its digest.
func TestBundleRefusesADamagedChunk(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	v1, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	_, pack, loc := firstChunk(t, repo, v1)
	name := filepath.Join(repo, chunkindex.PackPath(pack))
	b, _ := os.ReadFile(name)
	b[loc.Offset+uint64(loc.CSize/2)] ^= 0xff
	os.Chmod(name, 0o644)
	write(t, repo, chunkindex.PackPath(pack), b)
	if err := WriteBundle(context.Background(), io.Discard, repo, "demo", "v1"); err == nil {
		t.Fatal("a bundle was written with a damaged chunk")
	}
}
