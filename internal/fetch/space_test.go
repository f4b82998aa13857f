package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size ("512k"): a real filesystem that is nearly
// full, so the code meets what statfs and write really say. It needs root.
func smallDisk(t *testing.T, size string) string {
	testutil.NeedRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestHostileNotEnoughSpaceRefusedBeforeDownload(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1") // ~500 KiB to stage, then moved into the slot
	disk := smallDisk(t, "512k")
	staging := filepath.Join(disk, "staging")
	slots := filepath.Join(disk, "slots")
	os.Mkdir(staging, 0o755)
	os.Mkdir(slots, 0o755)
	p := plan(t, r)
	err := p.Check(Space{StagingDir: staging, SlotDir: slots, Margin: 64 << 10})
	wantErr(t, err, ErrNoSpace, "nothing was downloaded")
	if r.chunkRx.Load() != 0 {
		t.Fatal("chunks were requested before the space check")
	}
	// The same plan fits once the old slot's space is counted as freed.
	if err := p.Check(Space{StagingDir: staging, SlotDir: slots, Margin: 1, Reclaim: 600 << 10}); err != nil {
		t.Fatalf("with the inactive slot reclaimed the plan must fit: %v", err)
	}
}

func TestSpaceCheckSeparateFilesystems(t *testing.T) {
	old := statfs
	t.Cleanup(func() { statfs = old })
	statfs = func(path string, st *unix.Statfs_t) error {
		st.Bsize = 1
		if path == "/staging" {
			st.Fsid.Val[0], st.Bavail = 1, 10<<20
		} else {
			st.Fsid.Val[0], st.Bavail = 2, 100 // the slots' disk is full
		}
		return nil
	}
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	err := plan(t, r).Check(Space{StagingDir: "/staging", SlotDir: "/slots", Margin: 1})
	wantErr(t, err, ErrNoSpace, "on /slots")
}

func TestHostileDiskFullMidDownloadIsAnErrorNotARetry(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1") // ~500 KiB on a 256 KiB disk
	disk := smallDisk(t, "256k")
	ctx := context.Background()
	res, err := fastClient().Resolve(ctx, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStaging(disk)
	p, err := NewPlan(ctx, res.Manifest, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Skipping Check, as if another process filled the disk after it passed.
	err = fastClient().Download(ctx, res.RepoURL, p, DownloadOptions{Workers: 1})
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Download on a full disk = %v, want ENOSPC", err)
	}
	if got := r.chunkRx.Load(); got > int64(len(p.Fetch)) {
		t.Fatalf("%d chunk requests for %d chunks: a full disk must not be retried", got, len(p.Fetch))
	}
}
