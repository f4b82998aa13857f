package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/publish"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Create publishes the model directory dir and writes it as the bundle out. With
// opts.Repo empty, a temporary repository next to out is used and removed
// afterwards; then the sequence is opts.Sequence, or 1 — a bundle made without a
// repository knows no history, so give a sequence above what devices run.
// out is written temp → fsync → rename: a half-written bundle never has its name.
func Create(ctx context.Context, out, dir string, opts publish.Options) (*publish.Result, error) {
	if opts.Repo == "" {
		tmp, err := os.MkdirTemp(filepath.Dir(out), ".mslot-repo-*")
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		defer os.RemoveAll(tmp)
		opts.Repo = tmp
	}
	res, err := publish.Publish(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	err = Write(ctx, f, opts.Repo, opts.Model, opts.Version)
	if err == nil {
		err = durable.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.Rename(f.Name(), out)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", out, err)
	}
	return res, nil
}
