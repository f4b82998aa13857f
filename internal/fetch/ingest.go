package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/verify"
)

// Ingest reads the chunks of a bundle (after its verified manifest) into
// staging: each chunk the plan must fetch is decompressed within its declared
// size, verified and stored; the others are skipped. The manifest of r must be
// the plan's. Progress counts compressed bytes read.
func Ingest(ctx context.Context, r *bundle.Reader, p *Plan, progress Progress) error {
	if !verify.SameContent(r.Manifest, p.Manifest) {
		return fmt.Errorf("ingest bundle: the plan is for another manifest")
	}
	if p.ix != nil {
		return p.ingestIndexed(ctx, r, progress)
	}
	if err := p.prepareFiles(); err != nil {
		return err
	}
	want := map[string]bool{}
	var total int64
	for _, c := range r.Manifest.DistinctChunks() {
		total += c.CSize
	}
	for _, c := range p.Fetch {
		want[c.SHA256] = true
	}
	report := newReporter(progress, total)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, z, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ingestOne(p, c, z, want[c.SHA256]); err != nil {
			if errors.Is(err, ErrCorrupt) { // the bundle is the artifact: reading it again gives the same bytes
				return fmt.Errorf("%w: ingest bundle: %w", verify.ErrRejected, err)
			}
			return fmt.Errorf("ingest bundle: %w", err)
		}
		report.add(c.CSize)
	}
}

func ingestOne(p *Plan, c verify.Chunk, z io.Reader, wanted bool) error {
	if !wanted {
		_, err := io.Copy(io.Discard, z) // staged or reused: the bytes are not needed
		return err
	}
	buf, err := readChunkEntry(z, c)
	if err != nil {
		return err
	}
	defer putBuf(buf)
	return p.stageChunk(buf, c)
}
