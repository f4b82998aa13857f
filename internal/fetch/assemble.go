package fetch

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/modelslot/modelslot/verify"
)

// Fill is what Assemble needs of a slot being filled (slots.Fill provides it).
type Fill interface {
	// WriteFile writes f from r, hashing as it writes; a mismatch is a rejection.
	WriteFile(ctx context.Context, f verify.File, r io.Reader) error
	// CreateFile creates f for filling by other means (reflinks); the fill
	// verifies it at commit.
	CreateFile(f verify.File) (*os.File, error)
}

// Assemble writes every file of the plan's manifest into fill, in manifest
// order, from the active slot and the staging store; Download or Ingest must
// have staged the chunks the plan fetches. Where the filesystem can share
// blocks (FICLONE/FICLONERANGE on btrfs, XFS), unchanged files and aligned
// ranges are reflinked instead of copied. The caller commits or aborts fill.
func Assemble(ctx context.Context, p *Plan, fill Fill) error {
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
	src, whole := p.whole[f.Path]
	switch {
	case whole && clone:
		return cloneWhole(fill, f, src)
	case whole:
		in, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("reuse from the active slot: %w", err)
		}
		defer in.Close()
		return fill.WriteFile(ctx, f, in)
	case clone && p.usesSlot(f):
		return p.cloneRanges(ctx, f, fill)
	}
	r := p.newFileReader(ctx, f)
	defer r.close()
	return fill.WriteFile(ctx, f, r)
}

// usesSlot reports whether any chunk of f comes from the active slot.
func (p *Plan) usesSlot(f verify.File) bool {
	for _, c := range f.Chunks {
		if _, ok := p.slot[c.SHA256]; ok {
			return true
		}
	}
	return false
}

func cloneWhole(fill Fill, f verify.File, src string) error {
	in, err := os.Open(src)
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

// cloneRanges fills f with the chunks in order: ranges of the active slot that
// sit at the same block alignment are reflinked, the rest is written from
// verified bytes. Commit hashes the whole file afterwards.
func (p *Plan) cloneRanges(ctx context.Context, f verify.File, fill Fill) error {
	out, err := fill.CreateFile(f)
	if err != nil {
		return err
	}
	defer out.Close()
	r := p.newFileReader(ctx, f)
	defer r.close()
	var off int64
	for _, c := range f.Chunks {
		if sr, ok := p.slot[c.SHA256]; ok {
			if err := cloneOrCopyRange(out, off, sr, c.Size); err != nil {
				return err
			}
		} else if err := r.writeChunkAt(out, off, c); err != nil {
			return err
		}
		off += c.Size
	}
	return out.Close()
}
