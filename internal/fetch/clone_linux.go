package fetch

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// cloneBlock is the alignment FICLONERANGE needs on the filesystems that have
// it (btrfs, XFS: the 4 KiB block).
const cloneBlock = 4096

// reflinkWorks probes once whether the active slot's files can be reflinked
// onto the filesystem of the staging directory (slots and staging share the
// state directory's filesystem in the usual layout). Any failure means "copy".
func (p *Plan) reflinkWorks() bool {
	var src string
	for _, s := range p.whole {
		src = s
	}
	for _, s := range p.slot {
		src = s.file
	}
	return probeReflink(p.srcs, src, p.work)
}

// probeReflink tries to reflink src (a slot's file) into a temp file of the
// work directory.
func probeReflink(srcs sources, src string, w *work) bool {
	if src == "" {
		return false // nothing to reuse from a slot
	}
	in, err := srcs.open(src)
	if err != nil {
		return false
	}
	defer in.Close()
	if w.mkdir(".") != nil {
		return false
	}
	rel := fmt.Sprintf(".reflink-probe-%d", rand.Uint64())
	probe, err := w.root.Create(path.Join(w.rel, rel), 0o600)
	if err != nil {
		return false
	}
	defer w.root.RemoveAll(path.Join(w.rel, rel))
	defer probe.Close()
	return cloneFile(probe, in) == nil
}

// cloneFile makes dst share all of src's blocks (FICLONE).
func cloneFile(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

// cloneOrCopyRange puts n bytes of the active slot's range sr at off of out:
// the part that is block-aligned on both sides is reflinked, the edges (and
// everything, when the clone is refused) are copied.
func cloneOrCopyRange(out *os.File, off int64, srcs sources, sr slotRange, n int64) error {
	in, err := srcs.open(sr.file)
	if err != nil {
		return fmt.Errorf("reuse from the active slot: %w", err)
	}
	defer in.Close()
	if (sr.off-off)%cloneBlock != 0 {
		return copyRange(out, off, in, sr.off, n)
	}
	head := (cloneBlock - off%cloneBlock) % cloneBlock
	mid := (n - min(head, n)) / cloneBlock * cloneBlock
	if head >= n || mid == 0 {
		return copyRange(out, off, in, sr.off, n)
	}
	if err := copyRange(out, off, in, sr.off, head); err != nil {
		return err
	}
	err = unix.IoctlFileCloneRange(int(out.Fd()), &unix.FileCloneRange{
		Src_fd: int64(in.Fd()), Src_offset: uint64(sr.off + head), Src_length: uint64(mid), Dest_offset: uint64(off + head)})
	if err != nil {
		if err := copyRange(out, off+head, in, sr.off+head, mid); err != nil {
			return err
		}
	}
	tail := head + mid
	return copyRange(out, off+tail, in, sr.off+tail, n-tail)
}

func copyRange(out *os.File, off int64, in *os.File, srcOff, n int64) error {
	if n == 0 {
		return nil
	}
	w := io.NewOffsetWriter(out, off)
	got, err := io.Copy(w, io.NewSectionReader(in, srcOff, n))
	if err == nil && got != n {
		err = errors.New("active slot file is shorter than its manifest")
	}
	if err != nil {
		return fmt.Errorf("copy %d bytes from %s: %w", n, filepath.Base(in.Name()), err)
	}
	return nil
}

func isCrossDevice(err error) bool { return errors.Is(err, unix.EXDEV) }
