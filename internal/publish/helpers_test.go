package publish

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// installable checks what a device would: the index the manifest pins is
// there with its digest, and every chunk it lists is at its location in a
// pack, as a zstd frame declaring its size, decompressing to its digest. With
// dir, the chunks must also be the bytes of the files there.
func installable(repo string, m *verify.Manifest, dir string) error {
	if m.Schema != verify.SchemaIndexed || m.Index == nil {
		return fmt.Errorf("manifest schema %d, index %v: want schema 2 with an index", m.Schema, m.Index)
	}
	idx, err := os.ReadFile(filepath.Join(repo, chunkindex.IndexPath(m.Index.SHA256)))
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(idx); int64(len(idx)) != m.Index.Size || verify.HexDigest(sum[:]) != m.Index.SHA256 {
		return fmt.Errorf("index: %d bytes, digest %x; the manifest pins %+v", len(idx), sum, m.Index)
	}
	loc, err := os.Open(filepath.Join(repo, chunkindex.LocationsPath(m.Index.SHA256)))
	if err != nil {
		return err
	}
	defer loc.Close()
	ir, err := chunkindex.NewIndexReader(bytes.NewReader(idx), m)
	if err != nil {
		return err
	}
	lr, err := chunkindex.NewLocReader(loc, ir.Total())
	if err != nil {
		return err
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for {
		c, err := ir.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		l, err := lr.Next(c.Size)
		if err != nil {
			return err
		}
		if err := checkChunk(repo, dir, m, lr.Packs[l.Pack], l, c, dec); err != nil {
			return fmt.Errorf("chunk %d (%s): %w", c.Ordinal, c.Sum, err)
		}
	}
	_, err = lr.Next(0)
	if err != io.EOF {
		return fmt.Errorf("locations: %v after the last chunk", err)
	}
	return nil
}

func checkChunk(repo, dir string, m *verify.Manifest, pack chunkindex.Digest, l chunkindex.Loc, c chunkindex.Chunk, dec *zstd.Decoder) error {
	f, err := os.Open(filepath.Join(repo, chunkindex.PackPath(pack)))
	if err != nil {
		return err
	}
	defer f.Close()
	z := make([]byte, l.CSize)
	if _, err := f.ReadAt(z, int64(l.Offset)); err != nil {
		return err
	}
	data := z // stored plain (chunkindex.Plain)
	if !chunkindex.Plain(l.CSize, c.Size) {
		var h zstd.Header
		if err := h.Decode(z); err != nil || !h.HasFCS || h.FrameContentSize != uint64(c.Size) {
			return fmt.Errorf("frame header %+v (%v): want one declaring %d bytes", h, err, c.Size)
		}
		if data, err = dec.DecodeAll(z, nil); err != nil {
			return err
		}
		if len(z) >= len(data) {
			return fmt.Errorf("a %d-byte frame for %d bytes: publish stores such a chunk plain", len(z), len(data))
		}
	}
	if sha256.Sum256(data) != c.Sum {
		return fmt.Errorf("decompresses to other bytes")
	}
	if dir == "" {
		return nil
	}
	orig, err := os.ReadFile(filepath.Join(dir, m.Files[c.File].Path))
	if err != nil {
		return err
	}
	if !bytes.Equal(orig[c.Offset:c.Offset+int64(c.Size)], data) {
		return fmt.Errorf("not the bytes of %s at %d", m.Files[c.File].Path, c.Offset)
	}
	return nil
}

func mustInstallable(t *testing.T, repo string, m *verify.Manifest, dir string) {
	t.Helper()
	if err := installable(repo, m, dir); err != nil {
		t.Fatalf("%s %s is not installable from %s: %v", m.Model, m.Version, repo, err)
	}
}

// readManifest reads a stored manifest (unverified).
func readManifest(t *testing.T, repo, model, version string) *verify.Manifest {
	t.Helper()
	m, err := readUnverified(filepath.Join(repo, model, "manifests", version+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// packBytes is the size of every pack of the repository.
func packBytes(t *testing.T, repo string) (n int64, packs int) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(repo, "packs", "*", "*.pack"))
	for _, p := range matches {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n, len(matches)
}

func chunkerDefault() chunker.Params { return chunker.Default }
