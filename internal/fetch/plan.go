package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Active is the version the device serves now: a source of bytes that need not
// be downloaded again.
type Active struct {
	Dir      string           // the active slot's directory
	Manifest *verify.Manifest // the manifest it was verified against
	// Root, if not nil, is Dir opened beneath the state directory (the slot
	// store's OpenDir); without it Dir is opened by its path for each read.
	// Either way the slot's files are opened beneath it, never through a
	// link, and a FIFO or device in a file's place is refused.
	Root *durable.Root
}

// open opens the regular file rel (slash-separated) of the slot for reading.
func (a *Active) open(rel string) (*os.File, error) {
	if a.Root != nil {
		return a.Root.OpenRegular(rel, os.O_RDONLY)
	}
	r, err := durable.OpenRoot(a.Dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.OpenRegular(rel, os.O_RDONLY)
}

// sources are the slots a plan reuses bytes from.
type sources []*Active

// open opens name, a file under one of the slots' directories, beneath that
// slot's directory (Active.open).
func (s sources) open(name string) (*os.File, error) {
	for _, a := range s {
		if a == nil {
			continue
		}
		if rel, err := filepath.Rel(a.Dir, name); err == nil && filepath.IsLocal(rel) {
			return a.open(filepath.ToSlash(rel))
		}
	}
	return nil, fmt.Errorf("internal error: %s is in none of the slots reused", name)
}

// slotRange is where a chunk's bytes lie in the active slot.
type slotRange struct {
	file string // absolute path
	off  int64
}

// place is one use of a chunk: a staged file (relative to the work
// directory) and an offset in it.
type place struct {
	file string
	off  int64
}

// Plan says, before the first byte is downloaded, where every byte of the new
// version will come from: a whole unchanged file of the active slot, a chunk in
// the active slot, a chunk already staged by an earlier attempt, or the network.
type Plan struct {
	Manifest *verify.Manifest

	Fetch         []verify.Chunk // distinct chunks to download, in order of first use
	FetchChunks   int            // how many: len(Fetch), or the index entries to fetch (schema 2)
	FetchBytes    int64          // their compressed size: bytes on the wire (schema 2: with the gaps read through)
	FetchRequests int            // schema 2: the Range requests that fetch them (before retries)
	FetchSize     int64          // their uncompressed size
	StagedSize    int64          // bytes already staged and re-verified
	ReusedSize    int64          // bytes taken from the active slot
	WholeSize     int64          // of which whole unchanged files
	CopiedSize    int64          // bytes repeating an earlier chunk of the same version (schema 2)
	InlineSize    int64          // bytes of small files written from the signed manifest (verify.File.Data; schema 2)

	staging  *Staging
	work     *work
	prepared bool                 // the staged files exist (prepareFiles)
	whole    map[string]string    // new file path → identical active file
	slot     map[string]slotRange // chunk sha256 → its bytes in the active slot
	places   map[string][]place   // chunk sha256 → where it goes in the staged files
	ix       *indexed             // a schema-2 plan; the maps above are then unused
	srcs     sources              // the slots reused
}

// NewPlan plans the install of m. active may be nil (first install). Chunks an
// earlier attempt staged are re-hashed in place here; the active slot's bytes
// are checked as they are copied (Assemble). A schema-2 manifest's index and
// locations must be in staging first (a Source loads the index, and a
// repository's locations only when its plan downloads something); its plan
// also reuses the other slots given in more.
func NewPlan(ctx context.Context, m *verify.Manifest, st *Staging, active *Active, more ...*Active) (*Plan, error) {
	return newPlan(ctx, m, st, planOptions{}, active, more...)
}

// planOptions are what a Source knows that a plan may need.
type planOptions struct {
	// locs brings the repository's locations once the plan knows it
	// downloads something (index_load.go); nil when staging has them.
	locs locLoader
}

func newPlan(ctx context.Context, m *verify.Manifest, st *Staging, o planOptions, active *Active, more ...*Active) (*Plan, error) {
	w, err := st.workFor(m)
	if err != nil {
		return nil, err
	}
	srcs := append(sources{active}, more...)
	if m.Index != nil {
		p := &Plan{Manifest: m, staging: st, work: w, srcs: srcs}
		return p, p.planIndexed(ctx, o.locs, srcs)
	}
	p := &Plan{Manifest: m, staging: st, work: w, whole: map[string]string{},
		slot: map[string]slotRange{}, places: map[string][]place{}, srcs: srcs}
	p.indexActive(active)
	if err := p.placeFiles(); err != nil {
		return nil, err
	}
	done, err := w.journaled()
	if err != nil {
		return nil, err
	}
	for _, c := range m.DistinctChunks() {
		if _, needed := p.places[c.SHA256]; !needed {
			continue
		}
		if err := p.source(ctx, c, done[c.SHA256]); err != nil {
			return nil, err
		}
	}
	p.FetchChunks = len(p.Fetch)
	return p, nil
}

// placeFiles notes where each chunk of every file not reused whole goes in
// the staged files. It creates nothing (prepareFiles does, after Check).
func (p *Plan) placeFiles() error {
	for _, f := range p.Manifest.Files {
		if _, ok := p.whole[f.Path]; ok {
			p.ReusedSize += f.Size
			p.WholeSize += f.Size
			continue
		}
		if f.Size > 0 && len(f.Chunks) == 0 {
			return rejectf("file %s has no chunk list: this manifest cannot be installed from a repository", f.Path)
		}
		var off int64
		for _, c := range f.Chunks {
			p.places[c.SHA256] = append(p.places[c.SHA256], place{file: fileRel(f), off: off})
			off += c.Size
		}
	}
	return nil
}

// prepareFiles creates the staged file of every file not reused whole, with
// its size (sparse where nothing was written yet), keeping what an earlier
// attempt wrote. Download, Ingest and Assemble call it, after Check: a plan the
// disk cannot take leaves nothing behind, not even a sparse file.
func (p *Plan) prepareFiles() error {
	if p.prepared {
		return nil
	}
	if err := p.work.mkdir("files"); err != nil {
		return err
	}
	for _, f := range p.Manifest.Files {
		if _, ok := p.whole[f.Path]; ok {
			continue
		}
		if err := p.work.prepare(f); err != nil {
			return err
		}
	}
	p.prepared = true
	return nil
}

// source decides where chunk c comes from.
func (p *Plan) source(ctx context.Context, c verify.Chunk, journaled bool) error {
	if _, ok := p.slot[c.SHA256]; ok {
		p.ReusedSize += c.Size
		return nil
	}
	if journaled {
		ok, err := p.verifyPlaced(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			p.StagedSize += c.Size
			return nil
		}
	}
	p.Fetch = append(p.Fetch, c)
	p.FetchBytes += c.CSize
	p.FetchSize += c.Size
	return nil
}

// verifyPlaced re-hashes every place of a journaled chunk: a restart, a power
// cut or a stray write may have left other bytes there.
func (p *Plan) verifyPlaced(ctx context.Context, c verify.Chunk) (bool, error) {
	buf := getBuf(c.Size)[:c.Size]
	defer putBuf(buf)
	for _, pl := range p.places[c.SHA256] {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		err := p.work.readAt(pl.file, pl.off, buf)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // journaled, but the file is gone: fetch it again
		}
		if err != nil {
			return false, fmt.Errorf("plan: %w", err)
		}
		if checkSum(buf, c) != nil {
			return false, nil
		}
	}
	return true, nil
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
		files[fmt.Sprintf("%s/%d", f.SHA256, f.Size)] = name
		var off int64
		for _, c := range f.Chunks {
			if _, ok := p.slot[c.SHA256]; !ok {
				p.slot[c.SHA256] = slotRange{file: name, off: off}
			}
			off += c.Size
		}
	}
	for _, f := range p.Manifest.Files {
		if name, ok := files[fmt.Sprintf("%s/%d", f.SHA256, f.Size)]; ok && f.Size > 0 {
			p.whole[f.Path] = name
		}
	}
}

// stage writes a verified chunk to every place it has, then journals it.
func (p *Plan) stage(c verify.Chunk, data []byte) error {
	for _, pl := range p.places[c.SHA256] {
		if err := p.work.writeAt(pl.file, pl.off, data); err != nil {
			return fmt.Errorf("staging: chunk %s: %w", c.SHA256, err)
		}
	}
	return p.work.record(c.SHA256)
}

// Summary is one line for logs and the terminal.
func (p *Plan) Summary() string {
	return fmt.Sprintf("%s %s: download %d chunks (%d bytes%s), %d bytes already staged, %d bytes reused from the slots, %d bytes repeated in the version%s, %d bytes in all",
		p.Manifest.Model, p.Manifest.Version, p.FetchChunks, p.FetchBytes, p.requests(), p.StagedSize, p.ReusedSize, p.CopiedSize, p.inline(), p.Manifest.TotalSize())
}

func (p *Plan) inline() string {
	if p.InlineSize == 0 {
		return ""
	}
	return fmt.Sprintf(", %d bytes from the manifest", p.InlineSize)
}

func (p *Plan) requests() string {
	if p.ix == nil {
		return ""
	}
	return fmt.Sprintf(" in %d requests", p.FetchRequests)
}

// readAt reads buf at off of the staged file rel of the work directory.
func (w *work) readAt(rel string, off int64, buf []byte) error {
	f, err := w.open(rel, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(buf, off)
	return err
}

// writeAt writes data at off of the staged file rel of the work directory.
func (w *work) writeAt(rel string, off int64, data []byte) error {
	f, err := w.open(rel, os.O_WRONLY)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
