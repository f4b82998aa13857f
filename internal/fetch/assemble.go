package fetch

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Fill is what Assemble needs of a slot being filled (slots.Fill provides it).
type Fill interface {
	// Dir is the directory being filled.
	Dir() string
	// WriteFile writes f from r, hashing as it writes; a mismatch is a rejection.
	WriteFile(ctx context.Context, f verify.File, r io.Reader) error
	// CreateFile creates f for filling by other means; the fill verifies it at
	// commit, whatever file then has its name.
	CreateFile(f verify.File) (*os.File, error)
	// Adopt renames the finished file rel under from (staging's) into the
	// fill as f, both names resolved beneath their directories without
	// following a link; verified at commit.
	Adopt(f verify.File, from *durable.Root, rel string) error
	// AdoptVerified moves rel under from in as f without hashing it again:
	// only for a file whose every chunk was hashed against the
	// manifest-pinned index as it was written (slots.Fill.AdoptVerified).
	AdoptVerified(f verify.File, from *durable.Root, rel string) error
}

// Assemble completes the staged files with the chunks reused from the active
// slot and moves them into fill, in manifest order; whole unchanged files are
// taken from the active slot. Download or Ingest must have staged the chunks
// the plan fetches. Where the filesystem can share blocks (FICLONE and
// FICLONERANGE on btrfs, XFS), reuse is a reflink instead of a copy. A staged
// file enters the slot by rename, so its bytes are written once; the fill
// hashes every file at commit. The caller commits or aborts fill, and clears
// staging after a commit.
func Assemble(ctx context.Context, p *Plan, fill Fill) error {
	if p.ix != nil {
		return p.assembleIndexed(ctx, fill)
	}
	if err := p.prepareFiles(); err != nil {
		return err
	}
	clone := p.reflinkWorks()
	for _, f := range p.Manifest.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.assembleFile(ctx, f, fill, clone); err != nil {
			return fmt.Errorf("assemble %s: %w", f.Path, err)
		}
	}
	return nil
}

func (p *Plan) assembleFile(ctx context.Context, f verify.File, fill Fill, clone bool) error {
	if src, ok := p.whole[f.Path]; ok {
		return reuseWhole(ctx, fill, f, p.srcs, src, clone)
	}
	if err := p.copyFromSlot(ctx, f, clone); err != nil {
		return err
	}
	return adopt(ctx, fill, f, p.work)
}

// reuseWhole takes file f whole from a slot's identical file src: reflinked
// (verified at commit) or copied and hashed as it is written.
func reuseWhole(ctx context.Context, fill Fill, f verify.File, srcs sources, src string, clone bool) error {
	if clone {
		return cloneWhole(fill, f, srcs, src)
	}
	in, err := srcs.open(src)
	if err != nil {
		return fmt.Errorf("reuse from a slot: %w", err)
	}
	defer in.Close()
	return fill.WriteFile(ctx, f, in)
}

// copyFromSlot writes f's chunks that the active slot holds into f's staged
// file: reflinked where aligned and possible, else copied after a hash check.
func (p *Plan) copyFromSlot(ctx context.Context, f verify.File, clone bool) error {
	name := fileRel(f)
	var off int64
	for _, c := range f.Chunks {
		sr, ok := p.slot[c.SHA256]
		if ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := p.reuseRange(name, off, sr, c, clone); err != nil {
				return err
			}
		}
		off += c.Size
	}
	return nil
}

// reuseRange puts chunk c from the slot's range sr at off of the staged file
// rel (of the work directory).
func (p *Plan) reuseRange(rel string, off int64, sr slotRange, c verify.Chunk, clone bool) error {
	if clone {
		out, err := p.work.open(rel, os.O_WRONLY)
		if err != nil {
			return err
		}
		defer out.Close()
		return cloneOrCopyRange(out, off, p.srcs, sr, c.Size)
	}
	buf := getBuf(c.Size)[:c.Size]
	defer putBuf(buf)
	if err := readSlot(p.srcs, sr, buf); err != nil {
		return fmt.Errorf("reuse chunk %s from the active slot: %w", c.SHA256, err)
	}
	if err := checkSum(buf, c); err != nil {
		return fmt.Errorf("%w: the active slot's %s no longer matches its manifest (run `modelslot verify`): %w", verify.ErrRejected, sr.file, err)
	}
	return p.work.writeAt(rel, off, buf)
}

// readSlot reads buf at the slot range sr.
func readSlot(srcs sources, sr slotRange, buf []byte) error {
	f, err := srcs.open(sr.file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(buf, sr.off)
	return err
}

// adopt puts f's staged file of w into fill under f's name: renamed into
// the fill, which verifies it at commit. Across filesystems it is copied
// instead.
func adopt(ctx context.Context, fill Fill, f verify.File, w *work) error {
	err := fill.Adopt(f, w.root, path.Join(w.rel, fileRel(f)))
	if err == nil || !isCrossDevice(err) {
		return err
	}
	out, err := fill.CreateFile(f)
	if err != nil {
		return err
	}
	defer out.Close()
	in, err := w.open(fileRel(f), os.O_RDONLY)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = verify.CopyBuffer(ctx, out, in)
	return err
}

func cloneWhole(fill Fill, f verify.File, srcs sources, src string) error {
	in, err := srcs.open(src)
	if err != nil {
		return fmt.Errorf("reuse from the active slot: %w", err)
	}
	defer in.Close()
	out, err := fill.CreateFile(f)
	if err != nil {
		return err
	}
	if err := cloneFile(out, in); err != nil {
		// Not every pair of files can share blocks even where the probe could;
		// a copy is always possible. Commit verifies the result either way.
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}
