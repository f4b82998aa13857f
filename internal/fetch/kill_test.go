package fetch

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// TestKilledMidDownloadResumes kills a real process with SIGKILL in the middle
// of a download (no clean shutdown, nothing flushed on purpose), then starts
// again: the chunks the dead process verified are kept and not fetched twice.
func TestKilledMidDownloadResumes(t *testing.T) {
	if url := os.Getenv("FETCH_KILL_CHILD_URL"); url != "" {
		killChild(url, os.Getenv("FETCH_KILL_CHILD_STAGING"))
		return
	}
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	const before = 5 // chunks served before the server hangs
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if r.chunkRx.Load() <= before {
			return false
		}
		<-req.Context().Done() // hang until the client is gone
		return true
	})
	staging := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestKilledMidDownloadResumes$")
	child.Env = append(os.Environ(), "FETCH_KILL_CHILD_URL="+r.channelURL(), "FETCH_KILL_CHILD_STAGING="+staging)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); r.chunkRx.Load() <= before; {
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the child never reached the hanging chunk")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let it finish writing what it has
	child.Process.Kill()
	child.Wait()
	r.setFault(func(http.ResponseWriter, *http.Request) bool { return false })

	ctx := context.Background()
	res, err := fastClient().Resolve(ctx, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStaging(staging)
	p, err := NewPlan(ctx, res.Manifest, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := len(p.Fetch) + len(stagedChunks(p))
	if len(stagedChunks(p)) != before {
		t.Fatalf("after the kill %d of %d chunks count as staged, want the %d served", len(stagedChunks(p)), all, before)
	}
	served := r.chunkRx.Load()
	if err := fastClient().Download(ctx, res.RepoURL, p, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := r.chunkRx.Load() - served; got != int64(len(p.Fetch)) {
		t.Fatalf("the restarted download made %d chunk requests, want %d", got, len(p.Fetch))
	}
	out := t.TempDir()
	if err := Assemble(ctx, p, &dirFill{dir: out}); err != nil {
		t.Fatal(err)
	}
	if err := verify.VerifyTree(ctx, out, res.Manifest, 1); err != nil {
		t.Fatal(err)
	}
}

// stagedChunks lists the plan's chunks that it does not fetch (none are reused
// from a slot in this test).
func stagedChunks(p *Plan) []string {
	fetch := map[string]bool{}
	for _, c := range p.Fetch {
		fetch[c.SHA256] = true
	}
	var out []string
	for sum := range p.places {
		if !fetch[sum] {
			out = append(out, sum)
		}
	}
	return out
}

// killChild is the process that gets killed: one download worker, so the
// chunks before the hang are all complete.
func killChild(url, staging string) {
	ctx := context.Background()
	k := verify.NewKeyring(testKeyNoT(1).Public())
	c := fastClient()
	res, err := c.Resolve(ctx, url, k)
	if err != nil {
		os.Exit(2)
	}
	st, _ := OpenStaging(staging)
	p, err := NewPlan(ctx, res.Manifest, st, nil)
	if err != nil {
		os.Exit(2)
	}
	c.Download(ctx, res.RepoURL, p, DownloadOptions{Workers: 1})
	os.Exit(3) // not reached: the parent kills it while it hangs
}
