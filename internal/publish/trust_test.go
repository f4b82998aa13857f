package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunkindex"
)

// firstChunk returns the first chunk of a version's index and its location.
func firstChunk(t *testing.T, repo string, res *Result) (chunkindex.Entry, chunkindex.Digest, chunkindex.Loc) {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(repo, chunkindex.IndexPath(res.Manifest.Index.SHA256)))
	if err != nil {
		t.Fatal(err)
	}
	ir, err := chunkindex.NewIndexReader(bytes.NewReader(idx), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ir.Next()
	if err != nil {
		t.Fatal(err)
	}
	var pack chunkindex.Digest
	var loc chunkindex.Loc
	first := true
	eachLoc(t, repo, res.Manifest, func(packs []chunkindex.Digest, l chunkindex.Loc) {
		if first {
			pack, loc, first = packs[l.Pack], l, false
		}
	})
	return c.Entry, pack, loc
}

// plantPack writes a well-formed pack of one frame (of data) and a
// well-formed catalog that claims the frame is the chunk sum.
func plantPack(t *testing.T, repo string, sum chunkindex.Digest, data []byte) chunkindex.Digest {
	t.Helper()
	enc, _ := zstd.NewWriter(nil, zstd.WithSingleSegment(true))
	z := enc.EncodeAll(data, nil)
	pack := chunkindex.Digest(sha256.Sum256(z))
	write(t, repo, chunkindex.PackPath(pack), z)
	cat := encodeCatalog(pack, []catEntry{{sum: sum, size: uint32(len(data)), csize: uint32(len(z)), offset: 0}})
	write(t, repo, catalogPath(pack), cat)
	return pack
}

// TestPlantedCatalogIsNotTrusted: a repository holding a pack and a catalog
// that claim a chunk of the model, but whose bytes are other data: publish
// compares before it reuses, stores the real chunk, and never names the
// planted pack.
func TestPlantedCatalogIsNotTrusted(t *testing.T) {
	k, dir := testKey(t), modelDir(t, 1)
	scratch := t.TempDir()
	v0, err := Publish(context.Background(), dir, opts(scratch, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := firstChunk(t, scratch, v0)
	repo := t.TempDir()
	planted := plantPack(t, repo, c.Sum, bytes.Repeat([]byte("evil"), int(c.Size)/4+1)[:c.Size])
	if cat, _ := loadCatalogs(repo); cat[c.Sum].pack != planted {
		t.Fatalf("the planted catalog was not read (%v): the test plants nothing", cat)
	}
	res, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	if res.NewChunks != res.Chunks {
		t.Fatalf("%d of %d chunks written: the planted chunk must be stored anew", res.NewChunks, res.Chunks)
	}
	eachLoc(t, repo, res.Manifest, func(packs []chunkindex.Digest, _ chunkindex.Loc) {
		for _, p := range packs {
			if p == planted {
				t.Fatal("the version references the planted pack")
			}
		}
	})
	mustInstallable(t, repo, res.Manifest, dir)
}

// TestDamagedPackIsNotReused: a byte of a stored chunk flipped (same size,
// its catalog unchanged): the next publish of the same content writes that
// chunk again, and only it.
func TestDamagedPackIsNotReused(t *testing.T) {
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
	if installable(repo, v1.Manifest, dir) == nil {
		t.Fatal("the damage did not damage v1: the test shows nothing")
	}
	v2, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	if v2.NewChunks != 1 {
		t.Fatalf("v2 wrote %d chunks; want exactly the damaged one", v2.NewChunks)
	}
	mustInstallable(t, repo, v2.Manifest, dir)
}

// TestCatalogThatDoesNotTileItsPackIsIgnored: a catalog whose frames do not
// end where its pack does (a truncated pack, a catalog of another pack) is
// skipped whole.
func TestCatalogThatDoesNotTileItsPackIsIgnored(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	v1, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	_, pack, _ := firstChunk(t, repo, v1)
	name := filepath.Join(repo, chunkindex.PackPath(pack))
	if err := os.Truncate(name, 100); err != nil {
		t.Fatal(err)
	}
	if cat, _ := loadCatalogs(repo); len(cat) != 0 {
		t.Fatalf("%d chunks trusted from the catalog of a truncated pack", len(cat))
	}
	v2, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	if v2.NewChunks != v2.Chunks {
		t.Fatalf("v2 wrote %d of %d chunks; every chunk of the truncated pack must be stored again", v2.NewChunks, v2.Chunks)
	}
	mustInstallable(t, repo, v2.Manifest, dir)
}
