package fetch

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a 512 KiB tmpfs: a real filesystem that is nearly full, so the
// check is tested against what statfs really says. It needs root.
func smallDisk(t *testing.T) string {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestHostileNotEnoughSpaceRefusedBeforeDownload(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1") // ~500 KiB to stage, then moved into the slot
	disk := smallDisk(t)
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
