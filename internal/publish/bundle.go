package publish

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// The entries of a format-2 bundle after manifest.json, in this order
// (docs/repository.md § Bundle). They are the contract with the device's
// reader (internal/bundle).
const (
	BundleIndexName     = "index.idx"
	BundleLocationsName = "locations.loc"
	BundlePackName      = "data.pack"
)

// WriteBundle streams the published version model/version of the repository at
// repo as a bundle to w: for a schema-2 manifest, the envelope, its index,
// locations into the one pack that follows, and that pack, holding every
// distinct chunk once in order of first use; for a schema-1 manifest (an
// older repository), the envelope and one entry per chunk, as modelslot 0.1
// wrote them. The envelope is parsed (not verified: this is the publisher's
// own repository), but every chunk is decompressed and checked against its
// digest before it is written: a bundle never carries a bad chunk. Writing is
// deterministic: the same repository content gives the same bytes.
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
	// No prune while the packs are read. A repository this user may only read
	// (a mirror) cannot be pruned by them either: go on without the lock.
	unlock, err := lockRepo(ctx, repo, false)
	switch {
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
		slog.Debug("bundle: the repository lock cannot be taken on a read-only repository", "repo", repo, "err", err)
	case err != nil:
		return fmt.Errorf("bundle %s %s: %w", model, version, err)
	default:
		defer unlock()
	}
	if m.Index == nil {
		err = writeBundleInline(ctx, w, repo, env, m)
	} else {
		err = writeBundleIndexed(ctx, w, repo, env, m)
	}
	if err != nil {
		return fmt.Errorf("bundle %s %s: %w", model, version, err)
	}
	return nil
}

// bundleChunk is one distinct chunk: where the repository has it and where
// the bundle's pack will.
type bundleChunk struct {
	sum    chunkindex.Digest
	size   uint32
	from   chunkindex.Loc // in the repository's pack table (packs)
	offset uint64         // in data.pack
}

// bundlePlan is the bundle's content, computed from the index and the
// repository's locations: ~60 bytes a distinct chunk.
type bundlePlan struct {
	packs    []chunkindex.Digest
	distinct []bundleChunk
	locs     []chunkindex.Loc // the bundle's, one per index entry
	sizes    []uint32         // the index entries' sizes
	packSize uint64
	packSum  chunkindex.Digest
}

func writeBundleIndexed(ctx context.Context, w io.Writer, repo string, env []byte, m *verify.Manifest) error {
	idxFile := filepath.Join(repo, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256)))
	if err := checkIndexFile(idxFile, m.Index); err != nil {
		return err
	}
	plan, err := planBundle(repo, idxFile, m)
	if err != nil {
		return err
	}
	packs := newPackFiles(repo, plan.packs)
	defer packs.close()
	if err := plan.hashPack(ctx, packs); err != nil {
		return err
	}
	var locs bytes.Buffer
	if err := chunkindex.WriteLocations(&locs, []chunkindex.Digest{plan.packSum}, plan.locs, plan.sizes); err != nil {
		return err
	}
	idx, err := os.Open(idxFile)
	if err != nil {
		return err
	}
	defer idx.Close()
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, bundle.EnvelopeName, int64(len(env)), bytes.NewReader(env)); err != nil {
		return err
	}
	if err := writeEntry(tw, BundleIndexName, m.Index.Size, idx); err != nil {
		return err
	}
	if err := writeEntry(tw, BundleLocationsName, int64(locs.Len()), &locs); err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: BundlePackName, Size: int64(plan.packSize), Mode: 0o644, ModTime: epoch, Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if err := plan.eachFrame(ctx, packs, func(_ bundleChunk, z []byte) error { _, err := tw.Write(z); return err }); err != nil {
		return err
	}
	return tw.Close()
}

// checkIndexFile checks the stored index against the manifest's reference.
func checkIndexFile(name string, ref *verify.IndexRef) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("the chunk index is missing from the repository: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, ref.Size+1))
	if err != nil {
		return err
	}
	if got := verify.HexDigest(h.Sum(nil)); n != ref.Size || got != ref.SHA256 {
		return fmt.Errorf("%s: %d bytes with sha256 %s, the manifest pins %d bytes with %s; the repository is damaged",
			name, n, got, ref.Size, ref.SHA256)
	}
	return nil
}

// planBundle walks the index and the repository's locations together.
func planBundle(repo, idxFile string, m *verify.Manifest) (*bundlePlan, error) {
	idx, err := os.Open(idxFile)
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	loc, err := os.Open(filepath.Join(repo, filepath.FromSlash(chunkindex.LocationsPath(m.Index.SHA256))))
	if err != nil {
		return nil, fmt.Errorf("the chunk locations are missing from the repository: %w", err)
	}
	defer loc.Close()
	ir, err := chunkindex.NewIndexReader(idx, m)
	if err != nil {
		return nil, err
	}
	lr, err := chunkindex.NewLocReader(loc, ir.Total())
	if err != nil {
		return nil, err
	}
	p := &bundlePlan{packs: lr.Packs}
	at := map[chunkindex.Digest]int{} // distinct index of each chunk
	for {
		c, err := ir.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		l, err := lr.Next(c.Size)
		if err != nil {
			return nil, err
		}
		i, ok := at[c.Sum]
		if !ok {
			i = len(p.distinct)
			at[c.Sum] = i
			p.distinct = append(p.distinct, bundleChunk{sum: c.Sum, size: c.Size, from: l, offset: p.packSize})
			p.packSize += uint64(l.CSize)
		}
		d := p.distinct[i]
		p.locs = append(p.locs, chunkindex.Loc{Pack: 0, CSize: d.from.CSize, Offset: d.offset})
		p.sizes = append(p.sizes, c.Size)
	}
	if _, err := lr.Next(0); err != io.EOF {
		return nil, fmt.Errorf("chunk locations: %w", err)
	}
	return p, nil
}

// hashPack reads every frame once, checks it against its digest, and hashes
// data.pack: its digest goes into the locations, which precede it.
func (p *bundlePlan) hashPack(ctx context.Context, packs *packFiles) error {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(verify.MaxChunkSize))
	if err != nil {
		return err
	}
	defer dec.Close()
	h := sha256.New()
	buf := make([]byte, 0, 256<<10)
	err = p.eachFrame(ctx, packs, func(c bundleChunk, z []byte) error {
		data, err := z, error(nil)
		if !chunkindex.Plain(uint32(len(z)), c.size) {
			data, err = dec.DecodeAll(z, buf[:0])
		}
		if err != nil || len(data) != int(c.size) || sha256.Sum256(data) != c.sum {
			return fmt.Errorf("chunk %s in pack %s at %d is damaged (%v); publish the version again to store it anew",
				c.sum, p.packs[c.from.Pack], c.from.Offset, err)
		}
		h.Write(z)
		return nil
	})
	copy(p.packSum[:], h.Sum(nil))
	return err
}

// eachFrame reads the distinct chunks' frames in bundle order.
func (p *bundlePlan) eachFrame(ctx context.Context, packs *packFiles, fn func(bundleChunk, []byte) error) error {
	z := make([]byte, 0, 256<<10)
	for i, c := range p.distinct {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if n := int(c.from.CSize); cap(z) < n {
			z = make([]byte, n)
		} else {
			z = z[:n]
		}
		if err := packs.read(c.from, z); err != nil {
			return err
		}
		if err := fn(c, z); err != nil {
			return err
		}
	}
	return nil
}

// packFiles keeps the repository's packs open while a bundle is written.
type packFiles struct {
	repo  string
	table []chunkindex.Digest
	open  map[uint32]*os.File
}

func newPackFiles(repo string, table []chunkindex.Digest) *packFiles {
	return &packFiles{repo: repo, table: table, open: map[uint32]*os.File{}}
}

func (p *packFiles) read(l chunkindex.Loc, z []byte) error {
	f, ok := p.open[l.Pack]
	if !ok {
		var err error
		f, err = os.Open(filepath.Join(p.repo, filepath.FromSlash(chunkindex.PackPath(p.table[l.Pack]))))
		if err != nil {
			return fmt.Errorf("a pack is missing from the repository: %w", err)
		}
		p.open[l.Pack] = f
	}
	if _, err := f.ReadAt(z, int64(l.Offset)); err != nil {
		return fmt.Errorf("pack %s: %d bytes at %d: %w", p.table[l.Pack], len(z), l.Offset, err)
	}
	return nil
}

func (p *packFiles) close() {
	for _, f := range p.open {
		f.Close()
	}
}

// writeBundleInline writes a schema-1 bundle: the chunks of <repo>/chunks.
func writeBundleInline(ctx context.Context, w io.Writer, repo string, env []byte, m *verify.Manifest) error {
	tw := tar.NewWriter(w)
	if err := writeEntry(tw, bundle.EnvelopeName, int64(len(env)), bytes.NewReader(env)); err != nil {
		return err
	}
	for _, c := range m.DistinctChunks() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := writeChunk(tw, repo, c); err != nil {
			return err
		}
	}
	return tw.Close()
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
