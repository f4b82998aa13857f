package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// bigIndex writes a synthetic schema-2 version of files × per chunks of 64
// KiB (no model bytes: planning reads the index, not the files) with its
// index and locations (one pack) in dir, and returns its manifest. Chunks
// whose number is a multiple of share are the same in every version of seed
// and share, so two versions overlap.
func bigIndex(t *testing.T, dir string, files, per int, seed uint64) *verify.Manifest {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &verify.Manifest{Schema: verify.SchemaIndexed, Model: "demo", Version: fmt.Sprintf("v%d", seed), Sequence: seed}
	var index [][]chunkindex.Entry
	var locs []chunkindex.Loc
	var off uint64
	for f := range files {
		es := make([]chunkindex.Entry, per)
		for i := range es {
			if i%2 == 0 {
				es[i].Sum = sha256.Sum256([]byte(fmt.Sprint(f, i))) // in both versions
			} else {
				for j := range es[i].Sum {
					es[i].Sum[j] = byte(rng.Uint32())
				}
			}
			es[i].Size = 64 << 10
			locs = append(locs, chunkindex.Loc{CSize: 60 << 10, Offset: off})
			off += 60 << 10
		}
		index = append(index, es)
		m.Files = append(m.Files, verify.File{Path: fmt.Sprintf("part-%03d.bin", f), Size: int64(per) * 64 << 10,
			Mode: 0o644, SHA256: fmt.Sprintf("%064x", seed<<32|uint64(f))})
	}
	var ib, lb bytes.Buffer
	chunkindex.WriteIndex(&ib, index)
	sizes := make([]uint32, len(locs))
	for i := range sizes {
		sizes[i] = 64 << 10
	}
	chunkindex.WriteLocations(&lb, []chunkindex.Digest{{1}}, locs, sizes)
	sum := sha256.Sum256(ib.Bytes())
	m.Index = &verify.IndexRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(ib.Len()), Chunks: int64(len(locs))}
	os.MkdirAll(dir, 0o755)
	writeFile(t, dir, IndexFile, ib.Bytes())
	writeFile(t, dir, locFile, lb.Bytes())
	b, _ := json.Marshal(m)
	writeFile(t, dir, "manifest.json", b)
	return m
}

// TestFormat2PlanOf20GiBModelStaysUnder64MiB plans a 21 GiB model of 330k
// chunks against an active slot of as many (half of them shared) in a child
// process and reads the child's peak RSS: the index and locations are
// streamed and the tables take 16 bytes a chunk, so the plan — and the runs
// it would fetch — fit well under the 64 MiB the issue sets for a whole
// install. The bound is the design's, not a timing.
func TestFormat2PlanOf20GiBModelStaysUnder64MiB(t *testing.T) {
	if dir := os.Getenv("FETCH_MEM2_CHILD"); dir != "" {
		memChild(dir)
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("writes 24 MB of index; the race detector's memory is not the design's")
	}
	root := t.TempDir()
	const files, per = 20, 16500 // 330k chunks, 21.6 GB
	bigIndex(t, filepath.Join(root, "new"), files, per, 2)
	bigIndex(t, filepath.Join(root, "active"), files, per, 1)
	os.MkdirAll(filepath.Join(root, "active", verify.MetaDir), 0o755)
	os.Rename(filepath.Join(root, "active", IndexFile), filepath.Join(root, "active", verify.MetaDir, IndexFile))
	child := exec.Command(os.Args[0], "-test.run=^TestFormat2PlanOf20GiBModelStaysUnder64MiB$")
	child.Env = append(os.Environ(), "FETCH_MEM2_CHILD="+root)
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rss, runs, chunks, reused int64
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "MEM2 ") {
			fmt.Sscanf(line, "MEM2 rss=%d runs=%d chunks=%d reused=%d", &rss, &runs, &chunks, &reused)
		}
	}
	t.Logf("plan of %d chunks: peak RSS %d MiB, %d runs, %d bytes reused", files*per, rss>>20, runs, reused)
	if chunks != files*per/2 || reused != files*per/2*64<<10 {
		t.Fatalf("the plan fetches %d chunks and reuses %d bytes; want half of %d each", chunks, reused, files*per)
	}
	if rss == 0 || rss > 64<<20 {
		t.Fatalf("peak RSS of the plan: %d bytes, want under 64 MiB", rss)
	}
	// 10 GB to fetch, every other chunk: gaps of one chunk are read through,
	// so the runs are the bytes over the cap, not one a chunk.
	if limit := int64(files*per*60<<10)/MaxRangeBytes + files + 1; runs > limit {
		t.Fatalf("%d runs, want at most %d", runs, limit)
	}
}

func memChild(root string) {
	fail := func(err error) { fmt.Println("MEM2 error", err); os.Exit(2) }
	read := func(dir string) *verify.Manifest {
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			fail(err)
		}
		m := &verify.Manifest{}
		if err := json.Unmarshal(b, m); err != nil {
			fail(err)
		}
		return m
	}
	m, am := read(filepath.Join(root, "new")), read(filepath.Join(root, "active"))
	st, err := OpenStaging(filepath.Join(root, "staging"))
	if err != nil {
		fail(err)
	}
	w, _ := st.workFor(m)
	os.MkdirAll(w.dir, 0o755)
	for _, n := range []string{IndexFile, locFile} {
		if err := os.Rename(filepath.Join(root, "new", n), w.path(n)); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	p, err := NewPlan(ctx, m, st, &Active{Dir: filepath.Join(root, "active"), Manifest: am})
	if err != nil {
		fail(err)
	}
	packs, err := p.ix.packs()
	if err != nil {
		fail(err)
	}
	var n int64
	b := &runs{packs: packs, emit: func(*run) error { n++; return nil }}
	err = p.ix.walk(ctx, true, func(e *entry) error {
		if p.ix.kind[e.Ordinal] == kFetch {
			return b.add(e)
		}
		return nil
	})
	if err == nil {
		err = b.flush()
	}
	if err != nil {
		fail(err)
	}
	fmt.Println("MEM2 rss=" + strconv.FormatInt(testutil.HighWaterRSS(os.Getpid()), 10) + " runs=" + strconv.FormatInt(n, 10) +
		" chunks=" + strconv.Itoa(p.FetchChunks) + " reused=" + strconv.FormatInt(p.ReusedSize, 10))
	os.Exit(0)
}

// TestFormat2FullInstallPeakRSSUnder64MiB runs a whole format-2 install of a
// 128 MiB model (resolve, index, plan, 4 parallel Range runs, the writers,
// adopt) in a child process and reads its peak RSS: the buffers are a few
// chunks and one block per worker, not the model, so the bound holds for any
// model size (the tables grow 16 bytes a chunk: TestFormat2PlanOf20GiB…).
func TestFormat2FullInstallPeakRSSUnder64MiB(t *testing.T) {
	if url := os.Getenv("FETCH_RSS2_CHILD_URL"); url != "" {
		rssChild(url, os.Getenv("FETCH_RSS2_CHILD_DIR"))
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("installs 128 MiB; the race detector's memory is not the design's")
	}
	r := newRepo2(t)
	dir := t.TempDir()
	writeFile(t, dir, "weights.bin", randomBytes(128<<20, 4))
	r.publish2(dir, "v1")
	child := exec.Command(os.Args[0], "-test.run=^TestFormat2FullInstallPeakRSSUnder64MiB$")
	child.Env = append(os.Environ(), "FETCH_RSS2_CHILD_URL="+r.channelURL(), "FETCH_RSS2_CHILD_DIR="+t.TempDir())
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var rss int64
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "RSS2 ") {
			fmt.Sscanf(line, "RSS2 rss=%d", &rss)
		}
	}
	t.Logf("full install of 128 MiB: peak RSS %d MiB", rss>>20)
	if rss == 0 || rss > 64<<20 {
		t.Fatalf("peak RSS of a full install: %d bytes, want under 64 MiB", rss)
	}
}

func rssChild(url, dir string) {
	ctx := context.Background()
	c := fastClient()
	res, err := c.Resolve(ctx, url, verify.NewKeyring(testKeyNoT(1).Public()))
	if err != nil {
		fmt.Println("RSS2 error", err)
		os.Exit(2)
	}
	st, _ := OpenStaging(filepath.Join(dir, "staging"))
	src := &Source{}
	src.resolvedBy(c, res)
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	if _, err := src.fill(ctx, &dirFill{dir: out}, st, nil, Space{StagingDir: st.Dir(), SlotDir: out}); err != nil {
		fmt.Println("RSS2 error", err)
		os.Exit(2)
	}
	fmt.Println("RSS2 rss=" + strconv.FormatInt(testutil.HighWaterRSS(os.Getpid()), 10))
	os.Exit(0)
}
