package publish

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// WriteBundle streams the published version model/version of the repository at
// repo as a bundle (the format of package bundle) to w. The envelope is parsed
// (not verified: this is the publisher's own repository) to know which chunks
// to carry. Writing is deterministic: the same repository content gives the
// same bytes.
func WriteBundle(ctx context.Context, w io.Writer, repo, model, version string) error {
	envFile := filepath.Join(repo, model, filepath.FromSlash(verify.ManifestPath(version)))
	env, err := os.ReadFile(envFile)
	if err != nil {
		return fmt.Errorf("bundle %s %s: %w (publish it first)", model, version, err)
	}
	m, err := ReadUnverified(env)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", envFile, err)
	}
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, bundle.EnvelopeName, int64(len(env)), bytes.NewReader(env)); err != nil {
		return fmt.Errorf("bundle %s %s: %w", model, version, err)
	}
	for _, c := range m.DistinctChunks() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeChunk(tw, repo, c); err != nil {
			return fmt.Errorf("bundle %s %s: %w", model, version, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle %s %s: %w", model, version, err)
	}
	return nil
}

func writeChunk(tw *tar.Writer, repo string, c verify.Chunk) error {
	f, err := os.Open(filepath.Join(repo, filepath.FromSlash(verify.ChunkPath(c.SHA256))))
	if err != nil {
		return fmt.Errorf("chunk missing from the repository: %w", err)
	}
	defer f.Close()
	return writeEntry(tw, bundle.ChunkName(c.SHA256), c.CSize, f)
}

// epoch is every entry's time, so bundles of the same content are identical.
var epoch = time.Unix(0, 0).UTC()

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes, the manifest says %d", name, n, size)
	}
	return nil
}

// CreateBundle publishes the model directory dir and writes it as the bundle
// out. With opts.Repo empty, a temporary repository next to out is used and
// removed afterwards; then the sequence is opts.Sequence, or 1 — a bundle made
// without a repository knows no history, so give a sequence above what devices
// run. out is written temp → fsync → rename: a half-written bundle never has
// its name.
func CreateBundle(ctx context.Context, out, dir string, opts Options) (*Result, error) {
	if opts.Repo == "" {
		tmp, err := os.MkdirTemp(filepath.Dir(out), ".mslot-repo-*")
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		defer os.RemoveAll(tmp)
		opts.Repo = tmp
	}
	res, err := Publish(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	err = WriteBundle(ctx, f, opts.Repo, opts.Model, opts.Version)
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
