package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// The hostile servers of issue 13, against format 2: each breaks the download
// of v2's pack in one way; the install must end with a clear error of the
// right kind (or succeed by a retry where that is right) and leave the active
// slot (v1) as it was, verifying.

type hostile2 struct {
	r      *repo2
	active *Active
	m2     *verify.Manifest
	pack   chunkindex.Digest // v2's new pack
	locs   []chunkindex.Loc
	url    string // the channel; "" = the Go file server's
}

func newHostile2(t *testing.T) *hostile2 {
	r := newRepo2(t)
	m1 := r.publish2(bigModel(t, 1, 512<<10), "v1")
	out1, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m2 := r.publish2(bigModel(t, 2, 1<<20), "v2")
	packs, locs := r.locations(m2)
	lowerRangeCap(t, 256<<10) // several runs, most of them starting mid-pack
	r.resetLog()
	return &hostile2{r: r, active: r.asSlot(t, out1, m1), m2: m2, pack: packs[locs[0].Pack], locs: locs}
}

func (h *hostile2) install(t *testing.T) (*Plan, error) {
	url := h.url
	if url == "" {
		url = h.r.channelURL()
	}
	_, p, _, err := install2(t, fastClient(), url, h.r.trusted(), h.active, t.TempDir())
	return p, err
}

// activeStillServes checks v1 is intact after the failed install.
func (h *hostile2) activeStillServes(t *testing.T) {
	t.Helper()
	if err := verify.VerifyTree(context.Background(), h.active.Dir, h.active.Manifest, 1); err != nil {
		t.Fatalf("the active slot no longer verifies: %v", err)
	}
}

func isPack(req *http.Request) bool { return strings.Contains(req.URL.Path, "/packs/") }

func TestFormat2HostileCorruptFrame(t *testing.T) {
	h := newHostile2(t)
	name := h.r.packFile(h.pack)
	b, _ := os.ReadFile(name)
	l := h.locs[len(h.locs)/2]
	b[l.Offset+uint64(l.CSize)/2] ^= 0x55
	os.WriteFile(name, b, 0o644)
	_, err := h.install(t)
	wantErr(t, err, ErrDownload, "pack bytes "+strconv.FormatUint(l.Offset, 10))
	if errors.Is(err, verify.ErrRejected) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt bytes under a valid manifest are a transport failure (ErrCorrupt), not a rejected artifact: %v", err)
	}
	h.activeStillServes(t)
}

func TestFormat2HostileTruncatedPack(t *testing.T) {
	h := newHostile2(t)
	name := h.r.packFile(h.pack)
	fi, _ := os.Stat(name)
	os.Truncate(name, fi.Size()*2/3)
	_, err := h.install(t)
	wantErr(t, err, ErrDownload, "shorter than its locations say")
	h.activeStillServes(t)
}

// A connection cut mid-range is retried, asking only for what is missing.
func TestFormat2ConnectionCutMidRangeResumesFromNextChunk(t *testing.T) {
	h := newHostile2(t)
	k := int(h.locs[0].CSize) + 100 // the first chunk and a bit of the second
	var cut atomic.Bool
	h.r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !isPack(req) || req.Header.Get("Range") == "" || !strings.HasPrefix(req.Header.Get("Range"), "bytes=0-") || cut.Swap(true) {
			return false
		}
		b, _ := os.ReadFile(h.r.packFile(h.pack))
		var a, e int
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &e)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, e, len(b)))
		w.Header().Set("Content-Length", strconv.Itoa(e-a+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(b[:k])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection drops mid-body
	})
	if _, err := h.install(t); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("bytes=%d-", h.locs[1].Offset)
	var resumed bool
	for _, q := range h.r.packRequests() {
		resumed = resumed || strings.Contains(q, want)
	}
	if !resumed {
		t.Fatalf("after a cut in the first range, no request starts at the second chunk (%s): %v", want, h.r.packRequests())
	}
}

func TestFormat2HostileServerIgnoresRange(t *testing.T) {
	h := newHostile2(t)
	h.r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		req.Header.Del("Range") // the file server then answers 200 with the whole pack
		return false
	})
	_, err := h.install(t)
	wantErr(t, err, ErrNoRange, "it answered the whole file (HTTP 200)")
	if !errors.Is(err, ErrDownload) {
		t.Fatalf("want ErrDownload too: %v", err)
	}
	h.activeStillServes(t)
}

func TestFormat2HostileOtherContentRange(t *testing.T) {
	h := newHostile2(t)
	h.r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !isPack(req) {
			return false
		}
		var a, e int
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &e)
		b, _ := os.ReadFile(h.r.packFile(h.pack))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a+1, e, len(b)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(b[a+1 : e+1])
		return true
	})
	_, err := h.install(t)
	wantErr(t, err, ErrDownload, "the server answered Content-Range")
	h.activeStillServes(t)
}

func TestFormat2HostileMissingPack(t *testing.T) {
	h := newHostile2(t)
	os.Remove(h.r.packFile(h.pack))
	_, err := h.install(t)
	wantErr(t, err, ErrNotFound, "packs/")
	h.activeStillServes(t)
}

func TestFormat2HostileIndexOtherBytes(t *testing.T) {
	h := newHostile2(t)
	name := filepath.Join(h.r.dir, filepath.FromSlash(chunkindex.IndexPath(h.m2.Index.SHA256)))
	b, _ := os.ReadFile(name)
	b[len(b)-1] ^= 1
	os.WriteFile(name, b, 0o644)
	_, err := h.install(t)
	wantErr(t, err, ErrDownload, "the manifest pins")
	if n := h.r.packRequests(); len(n) != 0 {
		t.Fatalf("packs were requested before the index checked out: %v", n)
	}
	h.activeStillServes(t)
}

func TestFormat2HostileBadLocations(t *testing.T) {
	h := newHostile2(t)
	name := filepath.Join(h.r.dir, filepath.FromSlash(chunkindex.LocationsPath(h.m2.Index.SHA256)))
	b, _ := os.ReadFile(name)
	os.WriteFile(name, b[:len(b)-5], 0o644)
	_, err := h.install(t)
	if !errors.Is(err, ErrDownload) || !errors.Is(err, chunkindex.ErrLocations) {
		t.Fatalf("truncated locations: %v, want ErrDownload and ErrLocations", err)
	}
	h.activeStillServes(t)
}

func TestFormat2HostileOversizedIndex(t *testing.T) {
	h := newHostile2(t)
	name := filepath.Join(h.r.dir, filepath.FromSlash(chunkindex.IndexPath(h.m2.Index.SHA256)))
	b, _ := os.ReadFile(name)
	os.WriteFile(name, append(b, make([]byte, 1<<20)...), 0o644)
	// Fetched whole (no slot holds a section of it), it is refused.
	_, _, _, err := install2(t, fastClient(), h.r.channelURL(), h.r.trusted(), nil, t.TempDir())
	wantErr(t, err, ErrDownload, "larger than the")
	h.activeStillServes(t)
	// Assembled from sections, the bytes past the pinned ones are never read.
	if _, err := h.install(t); err != nil {
		t.Fatalf("an index with junk past its pinned bytes, fetched by sections: %v", err)
	}
}

// An index the staging filesystem cannot hold is refused before it is
// requested, so a huge declared index leaves nothing behind.
func TestFormat2IndexLargerThanFreeSpaceRefusedBeforeDownload(t *testing.T) {
	r := newRepo2(t)
	r.publish2(bigModel(t, 1, 256<<10), "v1")
	disk := smallDisk(t, "1m")
	_, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, filepath.Join(disk, "staging"))
	wantErr(t, err, ErrNoSpace, "the chunk index and its locations")
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.hits {
		if strings.Contains(p, "/index/") || strings.Contains(p, "/packs/") {
			t.Fatalf("%s was requested before the space check", p)
		}
	}
}

// A server that trickles a pack range is cut off by the client's minimum
// rate (h-dlfix's pace, shared by Range requests), not waited for forever.
func TestFormat2HostileTrickleIsCutOffByMinRate(t *testing.T) {
	h := newHostile2(t)
	h.r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !isPack(req) {
			return false
		}
		var a, e int
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &e)
		b, _ := os.ReadFile(h.r.packFile(h.pack))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, e, len(b)))
		w.WriteHeader(http.StatusPartialContent)
		for i := a; i <= e && req.Context().Err() == nil; i++ {
			w.Write(b[i : i+1])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
		return true
	})
	o := fastOptions
	o.Retries, o.MinRate, o.MinRateWindow = 1, 10<<10, 200*time.Millisecond
	_, _, _, err := install2(t, NewClient(o), h.r.channelURL(), h.r.trusted(), h.active, t.TempDir())
	wantErr(t, err, ErrDownload, "below the minimum")
	h.activeStillServes(t)
}

// A server that ignores Range still serves a run that starts at the pack's
// first byte: its 200 answer begins with the run, which is all that is read.
func TestFormat2ServerIgnoringRangeServesARunFromOffsetZero(t *testing.T) {
	r := newRepo2(t)
	r.publish2(bigModel(t, 1, 512<<10), "v1") // one pack, one run from 0
	var whole atomic.Int64
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if isPack(req) && req.Header.Get("Range") != "" {
			req.Header.Del("Range")
			whole.Add(1)
		}
		return false
	})
	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatalf("install from offset 0 over a server that ignores Range: %v", err)
	}
	if p.FetchRequests != 1 || whole.Load() != 1 {
		t.Fatalf("%d runs, %d whole answers; want the one", p.FetchRequests, whole.Load())
	}
}
