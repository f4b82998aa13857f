package fetch

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/verify"
)

// Active is the version the device serves now: a source of bytes that need not
// be downloaded again.
type Active struct {
	Dir      string           // the active slot's directory
	Manifest *verify.Manifest // the manifest it was verified against
}

// slotRange is where a chunk's bytes lie in the active slot.
type slotRange struct {
	file string // absolute path
	off  int64
}

// Plan says, before the first byte is downloaded, where every byte of the new
// version will come from: a whole unchanged file of the active slot, a chunk in
// the active slot, a chunk already staged, or the network.
type Plan struct {
	Manifest *verify.Manifest

	Fetch      []verify.Chunk // distinct chunks to download, in order of first use
	FetchBytes int64          // their compressed size: bytes on the wire
	FetchSize  int64          // their uncompressed size: what staging grows by
	StagedSize int64          // bytes of chunks already staged and re-verified
	ReusedSize int64          // bytes taken from the active slot

	staging *Staging
	whole   map[string]string    // new file path → identical active file
	slot    map[string]slotRange // chunk sha256 → its bytes in the active slot
	mu      sync.Mutex
	staged  map[string]bool // chunk sha256 → verified in staging; guarded by mu
}

// NewPlan plans the install of m. active may be nil (first install). Staged
// chunks are re-hashed here; the active slot's bytes are hashed as they are
// copied (Assemble), since the slot is read-only and was verified at install.
func NewPlan(ctx context.Context, m *verify.Manifest, st *Staging, active *Active) (*Plan, error) {
	p := &Plan{Manifest: m, staging: st, whole: map[string]string{}, slot: map[string]slotRange{}, staged: map[string]bool{}}
	p.indexActive(active)
	need := map[string]bool{}
	for _, f := range m.Files {
		if _, ok := p.whole[f.Path]; ok {
			p.ReusedSize += f.Size
			continue
		}
		if f.Size > 0 && len(f.Chunks) == 0 {
			return nil, rejectf("file %s has no chunk list: this manifest cannot be installed from a repository", f.Path)
		}
		for _, c := range f.Chunks {
			need[c.SHA256] = true
		}
	}
	for _, c := range bundle.ChunkOrder(m) {
		if !need[c.SHA256] {
			continue
		}
		if err := p.place(ctx, c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// place decides where chunk c comes from.
func (p *Plan) place(ctx context.Context, c verify.Chunk) error {
	if _, ok := p.slot[c.SHA256]; ok {
		p.ReusedSize += c.Size
		return nil
	}
	ok, err := p.staging.Has(ctx, c)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if ok {
		p.staged[c.SHA256] = true
		p.StagedSize += c.Size
		return nil
	}
	p.Fetch = append(p.Fetch, c)
	p.FetchBytes += c.CSize
	p.FetchSize += c.Size
	return nil
}

// indexActive records the active slot's whole files by digest and its chunks
// by address.
func (p *Plan) indexActive(a *Active) {
	if a == nil || a.Manifest == nil {
		return
	}
	files := map[string]string{}
	for _, f := range a.Manifest.Files {
		name := filepath.Join(a.Dir, filepath.FromSlash(f.Path))
		files[f.SHA256+"/"+fmt.Sprint(f.Size)] = name
		var off int64
		for _, c := range f.Chunks {
			if _, ok := p.slot[c.SHA256]; !ok {
				p.slot[c.SHA256] = slotRange{file: name, off: off}
			}
			off += c.Size
		}
	}
	for _, f := range p.Manifest.Files {
		if name, ok := files[f.SHA256+"/"+fmt.Sprint(f.Size)]; ok && f.Size > 0 {
			p.whole[f.Path] = name
		}
	}
}

// markStagedSafe records that c is now staged (after a download or a bundle
// read); downloads call it from several goroutines.
func (p *Plan) markStagedSafe(c verify.Chunk) {
	p.mu.Lock()
	p.staged[c.SHA256] = true
	p.mu.Unlock()
}

// Summary is one line for logs and the terminal.
func (p *Plan) Summary() string {
	return fmt.Sprintf("%s %s: download %d chunks (%d bytes), %d bytes already staged, %d bytes reused from the active slot, %d bytes in all",
		p.Manifest.Model, p.Manifest.Version, len(p.Fetch), p.FetchBytes, p.StagedSize, p.ReusedSize, p.Manifest.TotalSize())
}
