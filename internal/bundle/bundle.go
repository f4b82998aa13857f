// Package bundle reads and writes .mslot files: the content of one published
// version as a single tar stream — the signed manifest envelope first, then each
// distinct chunk once, in the order the manifest first uses it — so a device can
// install from a USB stick or from stdin without seeking.
//
// Invariants: a Reader yields chunks only after the envelope verified against the
// trusted keys, only under names the manifest lists, in the manifest's order and
// with the manifest's compressed sizes; anything else, including a stream that
// ends early, is a rejection (verify.ErrRejected). Writing is deterministic: the
// same repository content gives the same bytes.
package bundle

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

// Entry names inside the tar.
const (
	envelopeName = "manifest.json"
	chunkDir     = "chunks/"
	chunkExt     = ".zst"
)

// Ext is the file extension of a bundle.
const Ext = ".mslot"

// ChunkOrder lists the distinct chunks of m in the order the bundle carries them:
// the order of their first use, so a streaming reader can fill files front to back.
func ChunkOrder(m *verify.Manifest) []verify.Chunk {
	seen := map[string]bool{}
	var out []verify.Chunk
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c.SHA256] {
				seen[c.SHA256] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// Write streams the published version model/version of the repository at repo as
// a bundle to w. The envelope is parsed (not verified: this is the publisher's
// own repository) to know which chunks to carry.
func Write(ctx context.Context, w io.Writer, repo, model, version string) error {
	envFile := filepath.Join(repo, model, filepath.FromSlash(verify.ManifestPath(version)))
	env, err := os.ReadFile(envFile)
	if err != nil {
		return fmt.Errorf("bundle %s %s: %w (publish it first)", model, version, err)
	}
	m, err := publish.ReadUnverified(env)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", envFile, err)
	}
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, envelopeName, int64(len(env)), bytesReader(env)); err != nil {
		return fmt.Errorf("bundle %s %s: %w", model, version, err)
	}
	for _, c := range ChunkOrder(m) {
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
	return writeEntry(tw, chunkDir+c.SHA256+chunkExt, c.CSize, f)
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
