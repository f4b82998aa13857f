package fetch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelslot/modelslot/verify"
)

func TestHostileReplayOfOlderManifestIsADowngrade(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	oldChannel, _ := os.ReadFile(filepath.Join(r.dir, "demo/channels/stable.json"))
	writeFile(t, dir, "head.bin", []byte("v2"))
	r.publish(dir, "v2")
	// A mirror serves the old, validly signed pointer again.
	writeFile(t, r.dir, "demo/channels/stable.json", oldChannel)
	res, err := fastClient().Resolve(context.Background(), r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	p := verify.Policy{Model: "demo", ActiveSequence: 2}
	wantErr(t, p.Check(res.Manifest), verify.ErrRejected, "downgrade: v1 has sequence 1, the active version has 2")
	p.AllowDowngrade = true
	if err := p.Check(res.Manifest); err != nil {
		t.Fatalf("--allow-downgrade must allow it: %v", err)
	}
}

func TestHostileIncompatibleConstraints(t *testing.T) {
	m := &verify.Manifest{Model: "demo", Version: "v1", Requires: &verify.Requires{Arch: []string{"arm64"}}}
	err := verify.Policy{Model: "demo", Device: verify.Device{Arch: "amd64"}}.Check(m)
	wantErr(t, err, verify.ErrRejected, "architecture amd64 not in [arm64]")
	err = verify.Policy{Model: "other"}.Check(&verify.Manifest{Model: "demo"})
	wantErr(t, err, verify.ErrRejected, `for model "demo", this is "other"`)
}

func TestManifestServedUnderAnotherNameIsRejected(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	env, _ := os.ReadFile(filepath.Join(r.dir, "demo/manifests/v1.json"))
	writeFile(t, r.dir, "demo/manifests/v9.json", env)
	_, err := fastClient().Resolve(context.Background(), r.srv.URL+"/demo/manifests/v9.json", r.trusted())
	wantErr(t, err, verify.ErrRejected, `signed for version "v1"`)
	writeFile(t, r.dir, "other/manifests/v1.json", env)
	_, err = fastClient().Resolve(context.Background(), r.srv.URL+"/other/manifests/v1.json", r.trusted())
	wantErr(t, err, verify.ErrRejected, `signed for model "demo" but served under "other"`)
}

func TestBandwidthLimitHolds(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	p := plan(t, r)
	const limit = 2 << 20 // bytes per second
	c := NewClient(ClientOptions{Bandwidth: limit})
	start := time.Now()
	var last int64
	err := c.Download(context.Background(), r.srv.URL, p, DownloadOptions{Progress: func(done, total int64) {
		if done < last || total != p.FetchBytes {
			t.Errorf("progress went from %d to %d of %d", last, done, total)
		}
		last = done
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The first quarter second is burst; the rest is paced.
	min := time.Duration(float64(p.FetchBytes-limit/4) / limit * float64(time.Second))
	if d := time.Since(start); d < min*9/10 {
		t.Fatalf("%d bytes in %s under a %d B/s limit; want at least %s", p.FetchBytes, d, limit, min)
	}
	if last != p.FetchBytes {
		t.Fatalf("progress ended at %d of %d", last, p.FetchBytes)
	}
}
