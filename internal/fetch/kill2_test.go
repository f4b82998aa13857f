package fetch

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// TestFormat2KilledMidRangeResumesWithoutRefetching kills a real process with
// SIGKILL while a pack range streams in (the server sent five whole chunks and
// part of the sixth, then hangs); the next attempt asks for no byte of the
// five: every range it requests starts at or after the sixth.
func TestFormat2KilledMidRangeResumesWithoutRefetching(t *testing.T) {
	if url := os.Getenv("FETCH_KILL2_CHILD_URL"); url != "" {
		kill2Child(url, os.Getenv("FETCH_KILL2_CHILD_STAGING"))
		return
	}
	r := newRepo2(t)
	m := r.publish2(bigModel(t, 1, 1<<20), "v1")
	packs, locs := r.locations(m)
	pack := r.packFile(packs[0]) // one version, one pack
	const whole = 5
	k := int(locs[whole].Offset) + 100
	var hung atomic.Bool
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !isPack(req) {
			return false
		}
		b, _ := os.ReadFile(pack)
		var a, e int
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &e)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a, e, len(b)))
		w.Header().Set("Content-Length", strconv.Itoa(e-a+1))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(b[a:k])
		w.(http.Flusher).Flush()
		hung.Store(true)
		<-req.Context().Done()
		return true
	})
	staging := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestFormat2KilledMidRangeResumesWithoutRefetching$")
	child.Env = append(os.Environ(), "FETCH_KILL2_CHILD_URL="+r.channelURL(), "FETCH_KILL2_CHILD_STAGING="+staging)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !hung.Load(); {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the child never reached the hanging range")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let it write what it has
	child.Process.Kill()
	child.Wait()
	r.setFault(func(http.ResponseWriter, *http.Request) bool { return false })
	r.resetLog()

	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, staging)
	if err != nil {
		t.Fatal(err)
	}
	if p.StagedSize == 0 || p.FetchChunks != int(m.Index.Chunks)-whole {
		t.Fatalf("after the kill: %s; want the %d chunks received whole staged", p.Summary(), whole)
	}
	for _, q := range r.packRequests() {
		var a int
		if _, err := fmt.Sscanf(rangeOf(q), "bytes=%d-", &a); err != nil || uint64(a) < locs[whole].Offset {
			t.Fatalf("the resumed install asked for %q: bytes of the %d chunks already verified (the sixth starts at %d)", q, whole, locs[whole].Offset)
		}
	}
}

func rangeOf(q string) string {
	for i := len(q) - 1; i >= 0; i-- {
		if q[i] == ' ' {
			return q[i+1:]
		}
	}
	return q
}

// kill2Child is the process that gets killed: the device path with one worker.
func kill2Child(url, staging string) {
	ctx := context.Background()
	c := fastClient()
	res, err := c.Resolve(ctx, url, verify.NewKeyring(testKeyNoT(1).Public()))
	if err != nil {
		os.Exit(2)
	}
	st, _ := OpenStaging(staging)
	w, _ := st.workFor(res.Manifest)
	if err := c.loadIndex(ctx, res.RepoURL, res.Manifest, w, nil); err != nil {
		os.Exit(2)
	}
	p, err := newPlan(ctx, res.Manifest, st, planOptions{locs: c.locations(res.RepoURL, res.Manifest, w)}, nil)
	if err != nil {
		os.Exit(2)
	}
	c.Download(ctx, res.RepoURL, p, DownloadOptions{Workers: 1})
	os.Exit(3) // not reached: the parent kills it while it hangs
}
