package fetch

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// bigModel is a format-2 test model: two weight files of incompressible data
// (so compressed sizes are predictable) and a probe.
func bigModel(t *testing.T, seed uint64, weights int) string {
	dir := t.TempDir()
	writeFile(t, dir, "weights.bin", randomBytes(weights, seed))
	writeFile(t, dir, "head.bin", randomBytes(300<<10, seed+100))
	writeFile(t, dir, "probe/input.json", []byte(`{"x":[1]}`))
	writeFile(t, dir, "probe/expected.json", []byte(`{"y":[2]}`))
	return dir
}

// install2 is install for a format-2 repository at url (any server), with
// extra slots to reuse; it returns the fill too.
func install2(t *testing.T, c *Client, url string, trusted verify.Keyring, active *Active, staging string, more ...*Active) (string, *Plan, *dirFill, error) {
	t.Helper()
	return install2Planned(t, c, url, trusted, active, staging, nil, more...)
}

// install2Planned is install2 with planned told each plan made.
func install2Planned(t *testing.T, c *Client, url string, trusted verify.Keyring, active *Active, staging string, planned func(*Plan), more ...*Active) (string, *Plan, *dirFill, error) {
	t.Helper()
	ctx := context.Background()
	res, err := c.Resolve(ctx, url, trusted)
	if err != nil {
		return "", nil, nil, err
	}
	st, err := OpenStaging(staging)
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{planned: planned}
	src.resolvedBy(c, res)
	fill := &dirFill{dir: t.TempDir()}
	p, err := src.fill(ctx, fill, st, active, Space{StagingDir: st.Dir(), SlotDir: fill.dir}, more...)
	if err != nil {
		return "", p, fill, err
	}
	return fill.dir, p, fill, verify.VerifyTree(ctx, fill.dir, res.Manifest, 1)
}

// asSlot makes an installed directory a reuse source, as slots.Fill leaves
// it: the manifest's index in .modelslot/.
func (r *repo2) asSlot(t *testing.T, dir string, m *verify.Manifest) *Active {
	b, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256))))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, filepath.Join(verify.MetaDir, IndexFile), b)
	return &Active{Dir: dir, Manifest: m}
}

func (r *repo) packRequests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.packs...)
}

func (r *repo) resetLog() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packs, r.ranges, r.idx, r.loc, r.hits = nil, nil, nil, nil, map[string]int{}
	r.idxSent.Store(0)
	r.locSent.Store(0)
}

// lowerRangeCap makes runs split at n bytes for one test.
func lowerRangeCap(t *testing.T, n uint64) {
	old := rangeCap
	rangeCap = n
	t.Cleanup(func() { rangeCap = old })
}

func TestFormat2FullInstallFewRangeRequestsAndNoSecondHash(t *testing.T) {
	r := newRepo2(t)
	m := r.publish2(bigModel(t, 1, 3<<20), "v1")
	const cap = 512 << 10
	lowerRangeCap(t, cap)
	_, p, fill, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reqs := r.packRequests()
	// One pack, chunks in order of first use: the requests are the bytes
	// over the cap, rounded up, and not one per chunk.
	limit := int((p.FetchBytes+cap-1)/cap) + len(m.Files)
	if len(reqs) > limit || int64(len(reqs)) >= m.Index.Chunks/4 || len(reqs) != p.FetchRequests {
		t.Fatalf("full install of %d chunks (%d bytes) took %d pack requests, want at most %d, and the %d planned: %v", m.Index.Chunks, p.FetchBytes, len(reqs), limit, p.FetchRequests, reqs)
	}
	for _, q := range reqs {
		if !strings.Contains(q, "bytes=") {
			t.Fatalf("a pack request without a Range: %q", q)
		}
	}
	if fill.adopted != len(m.Files) || p.FetchChunks != int(m.Index.Chunks) {
		t.Fatalf("adopted %d of %d files unhashed; fetched %d of %d chunks", fill.adopted, len(m.Files), p.FetchChunks, m.Index.Chunks)
	}
}

func TestFormat2DeltaFetchesOnlyChangedChunksInOneRequest(t *testing.T) {
	r := newRepo2(t)
	dir := bigModel(t, 1, 2<<20)
	m1 := r.publish2(dir, "v1")
	out1, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[1<<20:], randomBytes(64<<10, 99)) // one region rewritten
	writeFile(t, dir, "weights.bin", w)
	r.publish2(dir, "v2")
	r.resetLog()
	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), r.asSlot(t, out1, m1), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reqs := r.packRequests()
	if len(reqs) != 1 || p.FetchBytes > 300<<10 || p.ReusedSize < 2<<20 {
		t.Fatalf("delta of 64 KiB: %d pack requests %v; %s", len(reqs), reqs, p.Summary())
	}
}

func TestFormat2ReusesTheInactiveSlot(t *testing.T) {
	r := newRepo2(t)
	dirA := bigModel(t, 1, 1<<20)
	mA := r.publish2(dirA, "v1")
	outA, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mB := r.publish2(bigModel(t, 50, 1<<20), "v2") // unrelated: the active slot has nothing of v1'
	outB, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(filepath.Join(dirA, "weights.bin"))
	copy(w[512<<10:], "v1 prime")
	writeFile(t, dirA, "weights.bin", w)
	r.publish2(dirA, "v3")
	r.resetLog()
	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), r.asSlot(t, outB, mB), t.TempDir(), r.asSlot(t, outA, mA))
	if err != nil {
		t.Fatal(err)
	}
	if p.FetchBytes > 200<<10 || p.ReusedSize < 1<<20 {
		t.Fatalf("install of v1' with v1 in the inactive slot: %s", p.Summary())
	}
}

// A device upgraded from schema 1 reuses its slot's inline chunks for its
// first schema-2 install: the same chunking gives the same chunk digests.
func TestFormat2ReusesASchema1Slot(t *testing.T) {
	old := newRepo(t)
	dir := bigModel(t, 1, 1<<20)
	old.publish(dir, "v1")
	out1, _, err := install(t, fastClient(), old, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m1 := old.publishedManifest("v1")
	if m1.Schema != verify.SchemaInline {
		t.Fatalf("test setup: the old publisher wrote schema %d", m1.Schema)
	}
	r := newRepo2(t)
	r.key = old.key
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[700<<10:], "v2")
	writeFile(t, dir, "weights.bin", w)
	r.publish2(dir, "v2")
	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), &Active{Dir: out1, Manifest: m1}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p.FetchBytes > 200<<10 || p.ReusedSize < 1<<20 {
		t.Fatalf("schema-2 install over a schema-1 slot: %s", p.Summary())
	}
}

// A version of compressible and incompressible files is stored as zstd
// frames and plain chunks (chunkindex.Plain); the device installs both, and
// a damaged frame is a corrupt chunk like a damaged plain one.
func TestFormat2FramesAndPlainChunks(t *testing.T) {
	r := newRepo2(t)
	dir := bigModel(t, 1, 1<<20)
	writeFile(t, dir, "vocab.txt", []byte(strings.Repeat("token merges and vocabulary compress well ", 20000)))
	m := r.publish2(dir, "v1")
	_, locs := r.locations(m)
	idx, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256))))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ir, err := chunkindex.NewIndexReader(idx, m)
	if err != nil {
		t.Fatal(err)
	}
	var frame *chunkindex.Loc
	plain := 0
	for {
		c, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch l := &locs[c.Ordinal]; {
		case chunkindex.Plain(l.CSize, c.Size):
			plain++
		case l.CSize < c.Size && frame == nil:
			frame = l
		}
	}
	if frame == nil || plain == 0 {
		t.Fatalf("%d plain chunks, a frame %v: want frames of the text and plain chunks of the weights", plain, frame)
	}
	if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	packs, _ := r.locations(m)
	name := r.packFile(packs[frame.Pack])
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[frame.Offset+uint64(frame.CSize)/2] ^= 0xff
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged frame: %v, want ErrCorrupt", err)
	}
}

// A chunk the active slot no longer holds (its file changed since it was
// verified, or another chunk shares the 8-byte digest prefix the reuse table
// keys on) is downloaded by a second plan, instead of an error that every
// retry would meet again: the install succeeds, the new slot verifies, and
// only that chunk comes on top of the update's own, in one more request.
func TestFormat2StaleSlotChunkIsDownloadedInstead(t *testing.T) {
	r, m2, active := bigFileCase(t)
	_, clean, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r.resetLog()
	name := filepath.Join(active.Dir, "model.gguf")
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed after it was verified"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var plans []*Plan
	dir, p, _, err := install2Planned(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir(), func(p *Plan) { plans = append(plans, p) })
	if err != nil {
		t.Fatalf("an install reusing a slot chunk that changed: %v, want it downloaded instead", err)
	}
	if len(plans) != 2 || plans[0].FetchChunks != clean.FetchChunks || p.FetchChunks != 1 || len(r.packRequests()) != 2 {
		t.Fatalf("%d plans (first fetching %d chunks, the clean install %d), last fetching %d, %d pack requests; want a second plan fetching the one changed chunk",
			len(plans), plans[0].FetchChunks, clean.FetchChunks, p.FetchChunks, len(r.packRequests()))
	}
	if err := verify.VerifyTree(t.Context(), dir, m2, 1); err != nil {
		t.Fatalf("the new slot: %v", err)
	}
}
