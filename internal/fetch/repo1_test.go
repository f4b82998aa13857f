package fetch

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

// A test-only publisher of schema-1 repositories and bundles: the layout
// modelslot 0.1 published (each file's chunks inline in the manifest, one
// zstd file a chunk under chunks/). The device must keep installing them,
// and internal/publish writes format 2 from issue 13 on, so the schema-1 tests carry
// their own writer.

type published struct{ Manifest *verify.Manifest }

// publish writes dir as schema-1 version v of model demo on channel stable.
func (r *repo) publish(dir, v string) *published {
	r.t.Helper()
	m := schema1Manifest(r.t, dir, v, r.nextSeq(), func(sum string, z []byte) {
		name := r.chunkFile(sum)
		if _, err := os.Stat(name); err == nil {
			return // shared by every version
		}
		writeFile(r.t, filepath.Dir(name), filepath.Base(name), z)
	})
	env, err := verify.SignManifest(m, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, r.dir, "demo/"+verify.ManifestPath(v), env)
	r.pointChannel(m, env)
	return &published{Manifest: m}
}

func (r *repo) nextSeq() uint64 {
	r.seq++
	return r.seq
}

// pointChannel signs channel stable of model demo to m.
func (r *repo) pointChannel(m *verify.Manifest, env []byte) {
	sum := sha256.Sum256(env)
	ch := &verify.Channel{Schema: verify.ChannelSchema, Model: "demo", Channel: "stable", Version: m.Version,
		Sequence: m.Sequence, Manifest: verify.ManifestPath(m.Version), ManifestSHA256: hex.EncodeToString(sum[:]), Created: m.Created}
	signed, err := verify.SignChannel(ch, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, r.dir, "demo/"+verify.ChannelPath("stable"), signed)
}

// schema1Manifest chunks every file of dir (testParams) into a schema-1
// manifest, handing each chunk's compressed bytes to store.
func schema1Manifest(t testing.TB, dir, v string, seq uint64, store func(sum string, z []byte)) *verify.Manifest {
	m := &verify.Manifest{Schema: verify.SchemaInline, Model: "demo", Version: v, Sequence: seq, Created: time.Now().UTC()}
	walkModel(t, dir, func(f verify.File, chunks [][]byte) {
		for _, c := range chunks {
			cs := sha256.Sum256(c)
			z := testEncoder.EncodeAll(c, nil)
			f.Chunks = append(f.Chunks, verify.Chunk{SHA256: hex.EncodeToString(cs[:]), Size: int64(len(c)), CSize: int64(len(z))})
			store(hex.EncodeToString(cs[:]), z)
		}
		m.Files = append(m.Files, f)
	})
	return m
}

// walkModel reads every regular file of dir, in path order, as its manifest
// entry (path, size, mode, sha256; no chunks) and its content cut into chunks
// with testParams: what both test repository writers start from.
func walkModel(t testing.TB, dir string, fn func(f verify.File, chunks [][]byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		sum := sha256.Sum256(data)
		f := verify.File{Path: filepath.ToSlash(rel), Size: int64(len(data)), Mode: verify.FileMode(fi.Mode().Perm()), SHA256: hex.EncodeToString(sum[:])}
		ck, err := chunker.New(bytes.NewReader(data), testParams)
		if err != nil {
			return err
		}
		var chunks [][]byte
		for {
			c, err := ck.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			chunks = append(chunks, bytes.Clone(c)) // Next's slice is reused
		}
		fn(f, chunks)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bundle1 writes dir as a schema-1 bundle: the envelope, then every
// distinct chunk once in order of first use.
func bundle1(t testing.TB, dir string, k *verify.PrivateKey) []byte {
	zs := map[string][]byte{}
	m := schema1Manifest(t, dir, "v1", 1, func(sum string, z []byte) { zs[sum] = z })
	env, err := verify.SignManifest(m, k)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
		tw.Write(data)
	}
	put(bundle.EnvelopeName, env)
	for _, c := range m.DistinctChunks() {
		put(bundle.ChunkName(c.SHA256), zs[c.SHA256])
	}
	tw.Close()
	return out.Bytes()
}
