package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/verify"
)

// legacyVersion stores dir as modelslot 0.1 published it: a schema-1
// manifest listing each file's chunks (one per file here), the chunks under
// <repo>/chunks.
func legacyVersion(t *testing.T, repo, dir, version string, seq uint64, k *verify.PrivateKey) *verify.Manifest {
	t.Helper()
	m, err := verify.Scan(context.Background(), dir, "demo", version, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Insecure, m.Sequence = false, seq
	enc, _ := zstd.NewWriter(nil, zstd.WithSingleSegment(true))
	for i := range m.Files {
		f := &m.Files[i]
		data, _ := os.ReadFile(filepath.Join(dir, f.Path))
		if len(data) == 0 {
			continue
		}
		z := enc.EncodeAll(data, nil)
		sum := sha256.Sum256(data)
		c := verify.Chunk{SHA256: verify.HexDigest(sum[:]), Size: int64(len(data)), CSize: int64(len(z))}
		f.Chunks = []verify.Chunk{c}
		write(t, repo, verify.ChunkPath(c.SHA256), z)
	}
	env, err := verify.SignManifest(m, k)
	if err != nil {
		t.Fatal(err)
	}
	write(t, repo, filepath.Join("demo", verify.ManifestPath(version)), env)
	return m
}

// TestSchema1RepositoryGetsFormat2Versions: a repository of modelslot 0.1
// keeps its schema-1 versions (their chunks/ store is left as it is and not
// reused: a format-2 version's chunks all go into packs), the sequence goes
// on from them, a bundle of the old version is a schema-1 bundle, and prune
// removes the schema-1 chunks once no kept manifest lists them.
func TestSchema1RepositoryGetsFormat2Versions(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	old := modelDir(t, 1)
	m0 := legacyVersion(t, repo, old, "v0", 5, k)
	res, err := Publish(context.Background(), old, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Sequence != 6 || res.NewChunks != res.Chunks {
		t.Fatalf("v1: sequence %d, %d of %d chunks new: want 6, all new (chunks/ is not reused)", res.Manifest.Sequence, res.NewChunks, res.Chunks)
	}
	mustInstallable(t, repo, res.Manifest, old)
	var b bytes.Buffer
	if err := WriteBundle(context.Background(), &b, repo, "demo", "v0"); err != nil {
		t.Fatal(err)
	}
	names, _ := untar(t, b.Bytes())
	want := []string{bundle.EnvelopeName}
	for _, c := range m0.DistinctChunks() {
		want = append(want, bundle.ChunkName(c.SHA256))
	}
	if !slices.Equal(names, want) {
		t.Fatalf("bundle of a schema-1 version: %v, want %v", names, want)
	}
	time.Sleep(10 * time.Millisecond)
	dry, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Manifests) != 0 || len(dry.Files) != 0 {
		t.Fatalf("keeping both versions, prune would remove %v %v", dry.Manifests, dry.Files)
	}
	done, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wantGone []string
	for _, c := range m0.DistinctChunks() {
		wantGone = append(wantGone, verify.ChunkPath(c.SHA256))
	}
	slices.Sort(wantGone)
	if !slices.Equal(done.Manifests, []string{"demo/manifests/v0.json"}) || !slices.Equal(done.Files, wantGone) {
		t.Fatalf("prune removed %v %v, want v0 and its %d chunks", done.Manifests, done.Files, len(wantGone))
	}
	mustInstallable(t, repo, res.Manifest, old)
}
