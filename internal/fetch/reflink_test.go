package fetch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/slots"
	"golang.org/x/sys/unix"
)

// xfsDir mounts a small XFS image with reflink support, where FICLONE and
// FICLONERANGE really share blocks. It needs root and mkfs.xfs (xfsprogs).
func xfsDir(t *testing.T) string {
	mkfs := testutil.NeedTool(t, "mkfs.xfs", "xfsprogs")
	testutil.NeedRoot(t, "loop-mounting an XFS image")
	img := filepath.Join(t.TempDir(), "xfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(300 << 20) // sparse; XFS's smallest size
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v %s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("loop-mount XFS: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

func used(t *testing.T, dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

func TestReflinkSharesUnchangedBlocksWithTheActiveSlot(t *testing.T) {
	mnt := xfsDir(t)
	r := newRepo(t)
	dir := t.TempDir()
	big := randomBytes(4<<20, 3)
	writeFile(t, dir, "frozen.bin", big)  // unchanged between versions: FICLONE
	writeFile(t, dir, "weights.bin", big) // one change in the middle: FICLONERANGE around it
	r.publish(dir, "v1")
	s, err := slots.Open(context.Background(), slots.Config{Dir: filepath.Join(mnt, "demo"), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := storeInstall(t, s, r); err != nil {
		t.Fatal(err)
	}
	w := append([]byte{}, big...)
	copy(w[2<<20:], "one changed tensor")
	writeFile(t, dir, "weights.bin", w)
	r.publish(dir, "v2")
	before := used(t, mnt)
	p, err := storeInstall(t, s, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifySlot(context.Background(), s.State().Active, 1); err != nil {
		t.Fatalf("reflinked slot does not verify: %v", err)
	}
	// Without sharing, v2 would take 8 MiB more; with it, the changed chunks
	// and metadata only.
	if grew := used(t, mnt) - before; grew > 1<<20 {
		t.Fatalf("the disk use grew by %d bytes for an 8 MiB version that shares all but %d bytes with the active one",
			grew, p.FetchSize)
	}
}

// The same for a format-2 install: chunks reused from the active slot are
// reflinked, in ranges as long as they run on in both files.
func TestFormat2ReflinkSharesUnchangedBlocksWithTheActiveSlot(t *testing.T) {
	mnt := xfsDir(t)
	r := newRepo2(t)
	dir := t.TempDir()
	big := randomBytes(4<<20, 3)
	writeFile(t, dir, "frozen.bin", big)
	writeFile(t, dir, "weights.bin", big)
	r.publish2(dir, "v1")
	s, err := slots.Open(context.Background(), slots.Config{Dir: filepath.Join(mnt, "demo"), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := storeInstallFrom(t, s, r.channelURL(), r.trusted()); err != nil {
		t.Fatal(err)
	}
	w := append([]byte{}, big...)
	copy(w[2<<20:], "one changed tensor")
	writeFile(t, dir, "weights.bin", w)
	r.publish2(dir, "v2")
	before := used(t, mnt)
	p, err := storeInstallFrom(t, s, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifySlot(context.Background(), s.State().Active, 1); err != nil {
		t.Fatalf("reflinked slot does not verify: %v", err)
	}
	grew := used(t, mnt) - before
	t.Logf("disk use grew by %d bytes; fetched %d", grew, p.FetchSize)
	if grew > 256<<10 { // chunk by chunk, it was ~500 KiB
		t.Fatalf("the disk use grew by %d bytes for an 8 MiB version that shares all but %d bytes with the active one",
			grew, p.FetchSize)
	}
}
