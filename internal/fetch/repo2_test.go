package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// A test-only publisher of format-2 repositories (FORMAT2.md), written from
// the contract with chunkindex, so the device side is tested against the
// format and not against internal/publish: files chunked with
// internal/chunker, new chunks zstd-compressed into packs in order of first
// use, chunks the repository has already referenced where they are, then the
// locations and index, the signed manifest, the channel.

type storedChunk struct {
	pack  chunkindex.Digest
	off   uint64
	csize uint32
}

type repo2 struct {
	*repo
	stored  map[chunkindex.Digest]storedChunk
	maxPack int // bytes a pack holds before a new one starts; 0 = one per version
	// noSections publishes without per-file index sections, as publishers
	// before them did.
	noSections bool
	// inline puts small files' bytes in the manifest (verify.File.Data), as
	// the publisher does, their chunks still in the index and packs.
	inline bool
}

func newRepo2(t *testing.T) *repo2 {
	return &repo2{repo: newRepo(t), stored: map[chunkindex.Digest]storedChunk{}}
}

var testEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))

// packWriter collects new chunks into packs.
type packWriter struct {
	r       *repo2
	buf     bytes.Buffer
	pending []chunkindex.Digest
	offs    []uint64
}

func (pw *packWriter) add(d chunkindex.Digest, data []byte) {
	if _, ok := pw.r.stored[d]; ok || pw.has(d) {
		return
	}
	z := testEncoder.EncodeAll(data, nil)
	if len(z) >= len(data) {
		z = data // stored plain, as the publisher does (chunkindex.Plain)
	}
	pw.pending = append(pw.pending, d)
	pw.offs = append(pw.offs, uint64(pw.buf.Len()))
	pw.buf.Write(z)
	if pw.r.maxPack > 0 && pw.buf.Len() >= pw.r.maxPack {
		pw.seal()
	}
}

func (pw *packWriter) has(d chunkindex.Digest) bool {
	for _, p := range pw.pending {
		if p == d {
			return true
		}
	}
	return false
}

func (pw *packWriter) seal() {
	if len(pw.pending) == 0 {
		return
	}
	b := pw.buf.Bytes()
	sum := chunkindex.Digest(sha256.Sum256(b))
	name := filepath.Join(pw.r.dir, filepath.FromSlash(chunkindex.PackPath(sum)))
	os.MkdirAll(filepath.Dir(name), 0o755)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		pw.r.t.Fatal(err)
	}
	for i, d := range pw.pending {
		end := uint64(len(b))
		if i+1 < len(pw.offs) {
			end = pw.offs[i+1]
		}
		pw.r.stored[d] = storedChunk{pack: sum, off: pw.offs[i], csize: uint32(end - pw.offs[i])}
	}
	pw.buf.Reset()
	pw.pending, pw.offs = nil, nil
}

// publish2 publishes dir as version v on channel stable.
func (r *repo2) publish2(dir, v string) *verify.Manifest {
	r.t.Helper()
	m := &verify.Manifest{Schema: verify.SchemaIndexed, Model: "demo", Version: v, Sequence: r.nextSeq(), Created: time.Now().UTC()}
	pw := &packWriter{r: r}
	var index [][]chunkindex.Entry
	budget := int64(verify.InlineBudget)
	walkModel(r.t, dir, func(f verify.File, chunks [][]byte) {
		if r.inline && f.Size > 0 && f.Size <= min(verify.InlineMax, budget) {
			f.Data = base64.StdEncoding.EncodeToString(bytes.Join(chunks, nil))
			budget -= f.Size
		}
		m.Files = append(m.Files, f)
		index = append(index, chunkEntries(chunks, pw))
	})
	pw.seal()
	r.writeIndex(m, index)
	env, err := verify.SignManifest(m, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, r.dir, "demo/"+verify.ManifestPath(v), env)
	r.pointChannel(m, env)
	return m
}

func chunkEntries(chunks [][]byte, pw *packWriter) []chunkindex.Entry {
	var out []chunkindex.Entry
	for _, c := range chunks {
		d := chunkindex.Digest(sha256.Sum256(c))
		out = append(out, chunkindex.Entry{Sum: d, Size: uint32(len(c))})
		pw.add(d, c)
	}
	return out
}

// writeIndex writes the index and its locations and pins the index in m.
func (r *repo2) writeIndex(m *verify.Manifest, index [][]chunkindex.Entry) {
	var ib bytes.Buffer
	if err := chunkindex.WriteIndex(&ib, index); err != nil {
		r.t.Fatal(err)
	}
	packNo := map[chunkindex.Digest]uint32{}
	var packs []chunkindex.Digest
	var locs []chunkindex.Loc
	var sizes []uint32
	for _, f := range index {
		for _, e := range f {
			sizes = append(sizes, e.Size)
			s := r.stored[e.Sum]
			n, ok := packNo[s.pack]
			if !ok {
				n = uint32(len(packs))
				packNo[s.pack] = n
				packs = append(packs, s.pack)
			}
			locs = append(locs, chunkindex.Loc{Pack: n, CSize: s.csize, Offset: s.off})
		}
	}
	var lb bytes.Buffer
	if err := chunkindex.WriteLocations(&lb, packs, locs, sizes); err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(ib.Bytes())
	m.Index = &verify.IndexRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(ib.Len()), Chunks: int64(len(locs))}
	if !r.noSections { // as the publisher does; without, as publishers before sections did
		for i, sec := range chunkindex.Sections(index) {
			m.Files[i].Index = &sec
		}
	}
	writeFile(r.t, r.dir, chunkindex.IndexPath(m.Index.SHA256), ib.Bytes())
	writeFile(r.t, r.dir, chunkindex.LocationsPath(m.Index.SHA256), lb.Bytes())
}

// locations reads back the served locations of m.
func (r *repo2) locations(m *verify.Manifest) ([]chunkindex.Digest, []chunkindex.Loc) {
	packs, locs, _ := r.locationsSized(m)
	return packs, locs
}

// locationsSized reads back the served locations of m and its index's
// chunk sizes, which encoding them again needs.
func (r *repo2) locationsSized(m *verify.Manifest) ([]chunkindex.Digest, []chunkindex.Loc, []uint32) {
	fi, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256))))
	if err != nil {
		r.t.Fatal(err)
	}
	defer fi.Close()
	ir, err := chunkindex.NewIndexReader(fi, m)
	if err != nil {
		r.t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(chunkindex.LocationsPath(m.Index.SHA256))))
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	lr, err := chunkindex.NewLocReader(f, m.Index.Chunks)
	if err != nil {
		r.t.Fatal(err)
	}
	var locs []chunkindex.Loc
	var sizes []uint32
	for {
		c, err := ir.Next()
		if errors.Is(err, io.EOF) {
			if _, err := lr.Next(0); !errors.Is(err, io.EOF) {
				r.t.Fatal(err)
			}
			return lr.Packs, locs, sizes
		}
		if err != nil {
			r.t.Fatal(err)
		}
		l, err := lr.Next(c.Size)
		if err != nil {
			r.t.Fatal(err)
		}
		locs, sizes = append(locs, l), append(sizes, c.Size)
	}
}

func (r *repo2) packFile(d chunkindex.Digest) string {
	return filepath.Join(r.dir, filepath.FromSlash(chunkindex.PackPath(d)))
}
