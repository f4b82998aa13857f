package publish

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// indexPoint is hit once the index and its locations are durable, before the
// manifest that pins them.
var indexPoint = crashpoint.Declare("publish.after-index")

// writeIndex stores the version's index and its locations (locations first:
// whoever finds the index finds where its chunks are) and returns the
// reference the manifest signs. Both are written temp → fsync → rename. An
// index with the same digest may exist (the same content published again):
// it holds the same bytes, and its locations are replaced by these, which
// are as good.
func writeIndex(repo string, files [][]chunkindex.Entry, packs []chunkindex.Digest, locs []chunkindex.Loc) (*verify.IndexRef, error) {
	dir := filepath.Join(repo, "index")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*.idx")
	if err != nil {
		return nil, fmt.Errorf("write the chunk index: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := verify.NewHash()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	err = chunkindex.WriteIndex(cw, files)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = durable.Sync(tmp)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write the chunk index: %w", err)
	}
	ref := &verify.IndexRef{SHA256: verify.HexDigest(h.Sum(nil)), Size: cw.n, Chunks: int64(len(locs))}
	var lb bytes.Buffer
	sizes := make([]uint32, 0, len(locs))
	for _, f := range files {
		for _, e := range f {
			sizes = append(sizes, e.Size)
		}
	}
	if err := chunkindex.WriteLocations(&lb, packs, locs, sizes); err != nil {
		return nil, err
	}
	locName := filepath.Join(repo, filepath.FromSlash(chunkindex.LocationsPath(ref.SHA256)))
	if err := os.MkdirAll(filepath.Dir(locName), 0o755); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(locName, lb.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write the chunk locations: %w", err)
	}
	if err := durable.Rename(tmp.Name(), filepath.Join(repo, filepath.FromSlash(chunkindex.IndexPath(ref.SHA256)))); err != nil {
		return nil, fmt.Errorf("write the chunk index: %w", err)
	}
	indexPoint.Hit()
	return ref, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
