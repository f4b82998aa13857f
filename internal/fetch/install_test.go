package fetch

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

func TestInstallFromChannel(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	out, p, err := install(t, fastClient(), r, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p.FetchBytes == 0 || p.ReusedSize != 0 || p.StagedSize != 0 {
		t.Fatalf("first install plan: %s", p.Summary())
	}
	if _, err := os.Stat(filepath.Join(out, "probe/expected.json")); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateReusesActiveSlotAndDownloadsOnlyChanges(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	v1, _, err := install(t, fastClient(), r, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	activeManifest := r.publishedManifest("v1")
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[200<<10:], "a changed tensor") // head.bin stays the same file
	writeFile(t, dir, "weights.bin", w)
	r.publish(dir, "v2")
	before := r.chunkRx.Load()
	_, p, err := install(t, fastClient(), r, &Active{Dir: v1, Manifest: activeManifest}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if n := r.chunkRx.Load() - before; n != int64(len(p.Fetch)) || n == 0 || n > 2 {
		t.Fatalf("update fetched %d chunks (plan %d); one changed region should cost one or two", n, len(p.Fetch))
	}
	if p.ReusedSize < 400<<10 {
		t.Fatalf("plan reused only %d bytes: %s", p.ReusedSize, p.Summary())
	}
}

func (r *repo) publishedManifest(v string) *verify.Manifest {
	r.t.Helper()
	env, err := os.ReadFile(filepath.Join(r.dir, "demo/manifests", v+".json"))
	if err != nil {
		r.t.Fatal(err)
	}
	m, err := verify.OpenManifest(env, r.trusted())
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func TestResumeAfterRestartFetchesOnlyWhatIsMissing(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	staging := t.TempDir()
	ctx := context.Background()
	c := fastClient()
	res, err := c.Resolve(ctx, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStaging(staging)
	p, _ := NewPlan(ctx, res.Manifest, st, nil)
	// The first attempt is killed after three chunks (a cancelled context is
	// what SIGTERM produces).
	ctx1, cancel := context.WithCancel(ctx)
	var done int
	err = c.Download(ctx1, res.RepoURL, p, DownloadOptions{Workers: 1, Progress: func(_, _ int64) {
		if done++; done == 4 { // the first call reports 0
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("the interrupted download succeeded")
	}
	// A new process: staging is opened again and re-verified.
	st2, _ := OpenStaging(staging)
	p2, err := NewPlan(ctx, res.Manifest, st2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p2.StagedSize == 0 || len(p2.Fetch) != len(p.Fetch)-3 {
		t.Fatalf("after restart: %d chunks to fetch of %d, staged %d bytes; want 3 kept", len(p2.Fetch), len(p.Fetch), p2.StagedSize)
	}
	before := r.chunkRx.Load()
	if err := c.Download(ctx, res.RepoURL, p2, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := r.chunkRx.Load() - before; got != int64(len(p2.Fetch)) {
		t.Fatalf("resume made %d chunk requests, want %d", got, len(p2.Fetch))
	}
	if err := Assemble(ctx, p2, &dirFill{dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
}

func TestStagedChunkCorruptedOnDiskIsFetchedAgain(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	ctx := context.Background()
	c := fastClient()
	res, err := c.Resolve(ctx, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStaging(t.TempDir())
	p, _ := NewPlan(ctx, res.Manifest, st, nil)
	if err := c.Download(ctx, res.RepoURL, p, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	// The process stops before assembling; then bit rot, or a power cut that
	// kept garbage, hits the second chunk of weights.bin.
	f, _ := res.Manifest.Lookup("weights.bin")
	victim := f.Chunks[1]
	name := p.work.file(f)
	b, _ := os.ReadFile(name)
	b[f.Chunks[0].Size+10] ^= 0xff
	os.WriteFile(name, b, 0o644)
	p2, err := NewPlan(ctx, res.Manifest, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Fetch) != 1 || p2.Fetch[0].SHA256 != victim.SHA256 {
		t.Fatalf("plan fetches %d chunks; want exactly the corrupted one again", len(p2.Fetch))
	}
	if err := c.Download(ctx, res.RepoURL, p2, DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := Assemble(ctx, p2, &dirFill{dir: out}); err != nil {
		t.Fatal(err)
	}
	if err := verify.VerifyTree(ctx, out, res.Manifest, 1); err != nil {
		t.Fatal(err)
	}
}
