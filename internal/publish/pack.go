package publish

import (
	"fmt"
	"hash"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// DefaultPackSize is where publish closes a pack and starts the next: large
// enough that a version's new chunks sit in a few files and a device's Range
// requests are few, small enough that one pack is a sensible object for a CDN
// or an object store, and that a killed publish loses little.
const DefaultPackSize = 128 << 20

// packPoint is hit once the first pack of a publish is in place, before its
// catalog: the crash tests kill publish there and check that nothing points at
// a pack that has no catalog, or at one that is missing.
var packPoint = crashpoint.Declare("publish.after-pack")

// packWriter appends zstd frames to the pack being written, a temporary file
// in <repo>/packs, hashing them as they go; finish names it by that digest.
type packWriter struct {
	repo  string
	limit int64
	onDir func(dir string) // a directory that must be synced before the index names the pack

	f       *os.File
	h       hash.Hash
	n       int64
	entries []catEntry
}

// add appends one frame and returns its offset; the caller closes the pack
// with finish when full returns true.
func (p *packWriter) add(sum chunkindex.Digest, size int, z []byte) (uint64, error) {
	if p.f == nil {
		dir := filepath.Join(p.repo, "packs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, err
		}
		f, err := os.CreateTemp(dir, ".tmp-*.pack")
		if err != nil {
			return 0, err
		}
		p.f, p.h, p.n, p.entries = f, verify.NewHash(), 0, nil
	}
	off := uint64(p.n)
	if _, err := p.f.Write(z); err != nil {
		return 0, fmt.Errorf("write pack %s: %w", p.f.Name(), err)
	}
	p.h.Write(z)
	p.n += int64(len(z))
	p.entries = append(p.entries, catEntry{sum: sum, size: uint32(size), csize: uint32(len(z)), offset: off})
	return off, nil
}

func (p *packWriter) full() bool { return p.f != nil && p.n >= p.limit }

func (p *packWriter) open() bool { return p.f != nil }

// finish makes the pack durable under its digest, then writes its catalog,
// and returns the digest. The temp file is removed on any failure.
func (p *packWriter) finish() (chunkindex.Digest, error) {
	var sum chunkindex.Digest
	f := p.f
	p.f = nil
	defer os.Remove(f.Name()) // a no-op once renamed
	err := f.Chmod(0o644)
	if err == nil {
		err = durable.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sum, fmt.Errorf("write pack: %w", err)
	}
	copy(sum[:], p.h.Sum(nil))
	name := filepath.Join(p.repo, filepath.FromSlash(chunkindex.PackPath(sum)))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return sum, err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return sum, fmt.Errorf("write pack: %w", err)
	}
	p.onDir(filepath.Dir(name))
	p.onDir(filepath.Dir(f.Name()))
	packPoint.Hit()
	cat := filepath.Join(p.repo, filepath.FromSlash(catalogPath(sum)))
	if err := durable.WriteFile(cat, encodeCatalog(sum, p.entries), 0o644); err != nil {
		return sum, fmt.Errorf("write the catalog of pack %s: %w", sum, err)
	}
	return sum, nil
}

// abort removes a pack left half-written by a failed publish.
func (p *packWriter) abort() {
	if p.f != nil {
		p.f.Close()
		os.Remove(p.f.Name())
		p.f = nil
	}
}
