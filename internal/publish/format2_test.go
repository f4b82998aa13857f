package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/safetensors"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// TestPublishWritesTheDocumentedLayout: every file of the repository is one of
// docs/repository.md's, each content-addressed file is named by its digest,
// and no temporary file or schema-1 chunk is left.
func TestPublishWritesTheDocumentedLayout(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	o := opts(repo, "v1", k)
	o.PackSize = 200 << 10 // several packs
	res, err := Publish(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	layout := map[string]*regexp.Regexp{
		"channel":    regexp.MustCompile(`^demo/channels/stable\.json$`),
		"manifest":   regexp.MustCompile(`^demo/manifests/v1\.json$`),
		"index":      regexp.MustCompile(`^index/([0-9a-f]{2})/([0-9a-f]{64})\.idx$`),
		"loc":        regexp.MustCompile(`^index/([0-9a-f]{2})/([0-9a-f]{64})\.loc$`),
		"pack":       regexp.MustCompile(`^packs/([0-9a-f]{2})/([0-9a-f]{64})\.pack$`),
		"catalog":    regexp.MustCompile(`^packs/([0-9a-f]{2})/([0-9a-f]{64})\.cat$`),
		"lock":       regexp.MustCompile(`^\.modelslot-lock$`),
		"model lock": regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*/\.publish-lock$`),
	}
	seen := map[string]int{}
	filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		kind := ""
		for k, re := range layout {
			if m := re.FindStringSubmatch(rel); m != nil {
				kind = k
				if len(m) == 3 && !strings.HasPrefix(m[2], m[1]) {
					t.Errorf("%s: shard %s is not its digest's first two digits", rel, m[1])
				}
				if k == "pack" || k == "index" {
					b, _ := os.ReadFile(p)
					if sum := sha256.Sum256(b); verify.HexDigest(sum[:]) != m[2] {
						t.Errorf("%s is not named by its sha256", rel)
					}
				}
			}
		}
		if kind == "" {
			t.Errorf("%s is not part of the documented layout", rel)
		}
		seen[kind]++
		return nil
	})
	if seen["pack"] < 2 || seen["catalog"] != seen["pack"] || seen["pack"] != res.NewPacks || seen["index"] != 1 || seen["loc"] != 1 {
		t.Fatalf("files by kind %v, %d new packs: want several packs, each with its catalog, one index and its locations", seen, res.NewPacks)
	}
	m := readManifest(t, repo, "demo", "v1")
	for _, f := range m.Files {
		if len(f.Chunks) != 0 {
			t.Fatalf("file %s lists chunks in a schema-2 manifest", f.Path)
		}
	}
	mustInstallable(t, repo, m, dir)
}

// safetensorsModel writes a model of n tensors of 100k float32 each (400 kB,
// several chunks each) and a config.
func safetensorsModel(t *testing.T, dir string, n int, change map[int]uint64) {
	t.Helper()
	tensors := map[string]safetensors.Tensor{}
	for i := range n {
		seed := uint64(i)
		if s, ok := change[i]; ok {
			seed = s
		}
		tensors[string(rune('a'+i))] = tensor(seed, 100_000)
	}
	b, err := safetensors.Marshal(nil, tensors)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "model.safetensors", b)
	write(t, dir, "config.json", []byte(`{"layers":6}`))
}

// TestSecondPublishWritesOnlyTheNewChunks: v2 changes one tensor of six; the
// packs grow by exactly what v2 reports, its new chunks are that tensor's bytes,
// and they are adjacent, in index order, in v2's one new pack.
func TestSecondPublishWritesOnlyTheNewChunks(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	safetensorsModel(t, dir, 6, nil)
	v1, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	before, packs1 := packBytes(t, repo)
	if before != v1.StoredBytes || packs1 != v1.NewPacks {
		t.Fatalf("v1: %d bytes in %d packs, it reports %d in %d", before, packs1, v1.StoredBytes, v1.NewPacks)
	}
	safetensorsModel(t, dir, 6, map[int]uint64{3: 77})
	v2, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	after, packs2 := packBytes(t, repo)
	if after-before != v2.StoredBytes || packs2 != packs1+1 {
		t.Fatalf("v2 wrote %d bytes in %d new packs, it reports %d", after-before, packs2-packs1, v2.StoredBytes)
	}
	if v2.NewBytes != 400_000 {
		t.Fatalf("v2's new chunks hold %d bytes; the changed tensor is 400000", v2.NewBytes)
	}
	m2 := readManifest(t, repo, "demo", "v2")
	mustInstallable(t, repo, m2, dir)
	// The new chunks, in index order, tile v2's new pack from 0 to its end.
	var next uint64
	newPack := -1
	eachLoc(t, repo, m2, func(packs []chunkindex.Digest, l chunkindex.Loc) {
		if !inPackTable(t, repo, packs[l.Pack], v1) {
			if newPack == -1 {
				newPack = int(l.Pack)
			}
			if int(l.Pack) != newPack || l.Offset != next {
				t.Fatalf("a new chunk at pack %d offset %d; want pack %d offset %d (adjacent, in order of first use)", l.Pack, l.Offset, newPack, next)
			}
			next += uint64(l.CSize)
		}
	})
	if int64(next) != v2.StoredBytes {
		t.Fatalf("new chunks end at %d, v2 stored %d", next, v2.StoredBytes)
	}
}

// inPackTable says whether pack is in v1's pack table (so not one v2 wrote):
// v2 only writes new packs.
func inPackTable(t *testing.T, repo string, pack chunkindex.Digest, v1 *Result) bool {
	t.Helper()
	m1 := v1.Manifest
	found := false
	eachLoc(t, repo, m1, func(packs []chunkindex.Digest, _ chunkindex.Loc) {
		for _, p := range packs {
			found = found || p == pack
		}
	})
	return found
}

func eachLoc(t *testing.T, repo string, m *verify.Manifest, fn func([]chunkindex.Digest, chunkindex.Loc)) {
	t.Helper()
	fi, err := os.Open(filepath.Join(repo, chunkindex.IndexPath(m.Index.SHA256)))
	if err != nil {
		t.Fatal(err)
	}
	defer fi.Close()
	ir, err := chunkindex.NewIndexReader(fi, m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(repo, chunkindex.LocationsPath(m.Index.SHA256)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr, err := chunkindex.NewLocReader(f, m.Index.Chunks)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := ir.Next()
		if err == io.EOF {
			if _, err := lr.Next(0); err != io.EOF {
				t.Fatalf("locations after the index's last chunk: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		l, err := lr.Next(c.Size)
		if err != nil {
			t.Fatal(err)
		}
		fn(lr.Packs, l)
	}
}

// TestPacksAreCappedAndInOrder: with a small pack size, a version's chunks
// fill packs one after the other; each pack ends within one frame of the cap.
func TestPacksAreCappedAndInOrder(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 3)
	o := opts(repo, "v1", k)
	o.PackSize = 100 << 10
	res, err := Publish(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, repo, "demo", "v1")
	mustInstallable(t, repo, m, dir)
	var lastPack uint32
	var next uint64
	sizes := map[uint32]uint64{}
	eachLoc(t, repo, m, func(_ []chunkindex.Digest, l chunkindex.Loc) {
		if l.Pack != lastPack {
			if l.Pack != lastPack+1 || l.Offset != 0 {
				t.Fatalf("chunk in pack %d at %d after pack %d: packs are filled in order", l.Pack, l.Offset, lastPack)
			}
			lastPack, next = l.Pack, 0
		}
		if l.Offset != next {
			t.Fatalf("pack %d: chunk at %d, want %d", l.Pack, l.Offset, next)
		}
		next += uint64(l.CSize)
		sizes[l.Pack] = next
	})
	if len(sizes) != res.NewPacks || res.NewPacks < 3 {
		t.Fatalf("%d packs in the locations, %d written: want at least 3", len(sizes), res.NewPacks)
	}
	for p, n := range sizes {
		if p != lastPack && (n < uint64(o.PackSize) || n > uint64(o.PackSize)+uint64(testParams.Max)) {
			t.Errorf("pack %d has %d bytes; the cap is %d", p, n, o.PackSize)
		}
	}
}

// TestIndexIsASmallFractionOfTheModel: manifest + index stay within 0.2% of
// the model (the bound), measured on a 48 MiB model with the default
// chunker; the formula it follows (36 bytes a chunk, chunks of ~74 KiB on
// average) gives 0.05% at any size, so a 20 GiB model's ~290k chunks make
// a 10 MiB index.
func TestIndexIsASmallFractionOfTheModel(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	write(t, dir, "a.bin", randomData(1, 32<<20))
	write(t, dir, "b.bin", randomData(2, 16<<20))
	o := opts(repo, "v1", k)
	o.Params = chunkerDefault()
	o.Level = 1 // the fastest: the ratio is about the index, not compression
	res, err := Publish(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	size := res.Manifest.TotalSize()
	m := res.Manifest.Index
	if m.Size != chunkindex.IndexSize(len(res.Manifest.Files), int(m.Chunks)) {
		t.Fatalf("index of %d bytes for %d chunks, the format says %d", m.Size, m.Chunks, chunkindex.IndexSize(len(res.Manifest.Files), int(m.Chunks)))
	}
	ratio := float64(m.Size+int64(len(res.Envelope))) / float64(size)
	perChunk := float64(size) / float64(m.Chunks)
	t.Logf("%d chunks of %.0f bytes on average: index %d bytes, manifest %d: %.3f%% of %d", m.Chunks, perChunk, m.Size, len(res.Envelope), 100*ratio, size)
	if ratio > 0.002 {
		t.Fatalf("manifest + index are %.3f%% of the model, over 0.2%%", 100*ratio)
	}
	if perChunk < 48<<10 || perChunk > 96<<10 {
		t.Fatalf("chunks of %.0f bytes on average, want about 64 KiB", perChunk)
	}
}

// TestEveryFilePinsItsIndexSection: the signed manifest pins each file's
// section of the stored index, so a device can fetch one section alone and
// check it; a file left unchanged by the next version keeps its pin.
func TestEveryFilePinsItsIndexSection(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	write(t, dir, "a.bin", randomData(1, 3<<20))
	write(t, dir, "config.json", []byte(`{"layers": 4}`))
	write(t, dir, "z.bin", randomData(2, 2<<20))
	o := opts(repo, "v1", k)
	o.Params = chunkerDefault()
	res, err := Publish(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	pins := func(m *verify.Manifest) map[string]verify.FileIndex {
		idx, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256))))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]verify.FileIndex{}
		off := int64(chunkindex.HeaderSize)
		for _, f := range m.Files {
			if f.Index == nil {
				t.Fatalf("%s pins no index section", f.Path)
			}
			end := off + chunkindex.SectionSize(f.Index.Chunks)
			if end > int64(len(idx)) {
				t.Fatalf("%s: section %d-%d past the index's %d bytes", f.Path, off, end, len(idx))
			}
			if sum := sha256.Sum256(idx[off:end]); verify.HexDigest(sum[:]) != f.Index.SHA256 {
				t.Fatalf("%s pins section %s, the index bytes %d-%d are %x", f.Path, f.Index.SHA256, off, end, sum)
			}
			out[f.Path] = *f.Index
			off = end
		}
		if off != int64(len(idx)) {
			t.Fatalf("the sections end at %d, the index at %d", off, len(idx))
		}
		return out
	}
	v1 := pins(res.Manifest)
	write(t, dir, "config.json", []byte(`{"layers": 5}`))
	o2 := opts(repo, "v2", k)
	o2.Params = o.Params
	res2, err := Publish(context.Background(), dir, o2)
	if err != nil {
		t.Fatal(err)
	}
	v2 := pins(res2.Manifest)
	if v1["a.bin"] != v2["a.bin"] || v1["z.bin"] != v2["z.bin"] {
		t.Fatal("an unchanged file's section pin changed")
	}
	if v1["config.json"] == v2["config.json"] {
		t.Fatal("the changed file kept its section pin")
	}
}

// TestCancelledPublishLeavesNoManifestNorTempFile: a publish cancelled while
// it writes packs returns the cancellation and leaves no manifest, index or
// half-written pack.
func TestCancelledPublishLeavesNoManifestNorTempFile(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	write(t, dir, "a.bin", randomData(1, 8<<20))
	ctx, cancel := context.WithCancel(context.Background())
	afterCatalogs = func() { time.AfterFunc(20*time.Millisecond, cancel) }
	defer func() { afterCatalogs = func() {} }()
	o := opts(repo, "v1", k)
	o.PackSize = 1 << 20
	if _, err := Publish(ctx, dir, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled publish = %v, want context.Canceled", err)
	}
	for _, f := range repoFiles(t, repo) {
		if f == "demo/"+ModelLockName {
			continue // the model's publish lock stays, as the repository's does
		}
		if strings.Contains(f, ".tmp-") || strings.HasPrefix(f, "index/") || strings.HasPrefix(f, "demo/") {
			t.Errorf("a cancelled publish left %s", f)
		}
	}
}

// TestIncompressibleChunksAreStoredPlain: a chunk zstd would not make smaller
// is stored as its plain bytes (csize == size), with no frame's overhead; a
// compressible one is a zstd frame smaller than it. Both install.
func TestIncompressibleChunksAreStoredPlain(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	write(t, dir, "random.bin", randomData(3, 1<<20))
	write(t, dir, "text.bin", bytes.Repeat([]byte("weights compress a little, text a lot. "), 30000))
	o := opts(repo, "v1", k)
	o.Params = chunkerDefault()
	res, err := Publish(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	fi, err := os.Open(filepath.Join(repo, chunkindex.IndexPath(m.Index.SHA256)))
	testutil.OK(t, err)
	defer fi.Close()
	ir, err := chunkindex.NewIndexReader(fi, m)
	testutil.OK(t, err)
	var locs []chunkindex.Loc
	eachLoc(t, repo, m, func(_ []chunkindex.Digest, l chunkindex.Loc) { locs = append(locs, l) })
	plain := map[string]int{}
	frames := map[string]int{}
	for {
		c, err := ir.Next()
		if err == io.EOF {
			break
		}
		testutil.OK(t, err)
		l, path := locs[c.Ordinal], m.Files[c.File].Path
		switch {
		case chunkindex.Plain(l.CSize, c.Size):
			plain[path]++
		case l.CSize < c.Size:
			frames[path]++
		default:
			t.Fatalf("%s chunk %d: a %d-byte frame for %d bytes", path, c.Ordinal, l.CSize, c.Size)
		}
	}
	if plain["random.bin"] == 0 || frames["random.bin"] != 0 || frames["text.bin"] == 0 || plain["text.bin"] != 0 {
		t.Fatalf("stored plain %v, as frames %v: want random.bin plain and text.bin compressed", plain, frames)
	}
	if err := installable(repo, m, dir); err != nil {
		t.Fatal(err)
	}
}
