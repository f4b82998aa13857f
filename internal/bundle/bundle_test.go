package bundle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/bundle"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

func testKey(t testing.TB, seed byte) *verify.PrivateKey {
	k, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// makeBundle writes a schema-1 bundle of a small model with a repeated block
// (so a chunk is used twice). Schema 1 is what modelslot 0.1 published and
// devices still read; internal/publish writes format 2 from issue 13 on, so
// these tests carry their own writer (writeBundle1).
func makeBundle(t *testing.T, k *verify.PrivateKey) []byte {
	t.Helper()
	return writeBundle1(t, modelDir(t), k, chunker.Params{Min: 16 << 10, Avg: 32 << 10, Max: 64 << 10})
}

func modelDir(t *testing.T) string {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 300<<10)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	os.WriteFile(filepath.Join(dir, "a.bin"), w, 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), w, 0o644) // the same chunks again
	return dir
}

// publishedBundle is the publisher's bundle of the same model.
func publishedBundle(t *testing.T, k *verify.PrivateKey) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m"+bundle.Ext)
	_, err := publish.CreateBundle(context.Background(), out, modelDir(t), publish.Options{Model: "demo", Version: "v1", Key: k,
		Params: chunker.Params{Min: 16 << 10, Avg: 32 << 10, Max: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeBundle1 writes dir as a schema-1 bundle: the envelope, then every
// distinct chunk once, in order of first use, as chunks/<sha256>.zst.
func writeBundle1(tb testing.TB, dir string, k *verify.PrivateKey, p chunker.Params) []byte {
	enc, _ := zstd.NewWriter(nil)
	m := &verify.Manifest{Schema: verify.SchemaInline, Model: "demo", Version: "v1", Sequence: 1}
	zs := map[string][]byte{}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		sum := sha256.Sum256(data)
		f := verify.File{Path: filepath.Base(name), Size: int64(len(data)), Mode: 0o644, SHA256: hex.EncodeToString(sum[:])}
		ck, _ := chunker.New(bytes.NewReader(data), p)
		for {
			c, err := ck.Next()
			if err != nil {
				break
			}
			cs := sha256.Sum256(c)
			z := enc.EncodeAll(c, nil)
			zs[hex.EncodeToString(cs[:])] = z
			f.Chunks = append(f.Chunks, verify.Chunk{SHA256: hex.EncodeToString(cs[:]), Size: int64(len(c)), CSize: int64(len(z))})
		}
		m.Files = append(m.Files, f)
	}
	env, err := verify.SignManifest(m, k)
	if err != nil {
		tb.Fatal(err)
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

// readAll reads every chunk, decompresses and checks it against its address.
func readAll(r *bundle.Reader) (int, error) {
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	n := 0
	for {
		c, z, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		zb, err := io.ReadAll(z)
		if err != nil {
			return n, err
		}
		data, err := dec.DecodeAll(zb, nil)
		sum := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(sum[:]) != c.SHA256 {
			return n, errors.New("chunk does not match its address")
		}
		n++
	}
}

func TestBundleStreamsVerifiedManifestThenChunks(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle(t, k)
	pr, pw := io.Pipe() // a pipe cannot seek: the reader must stream, as from stdin
	go func() { pw.CloseWithError(iotestCopy(pw, b)) }()
	r, err := bundle.NewReader(pr, verify.NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	distinct := len(r.Manifest.DistinctChunks())
	var uses int
	for _, f := range r.Manifest.Files {
		uses += len(f.Chunks)
	}
	if distinct == 0 || uses != 2*distinct {
		t.Fatalf("%d distinct chunks used %d times; the test model repeats every chunk once", distinct, uses)
	}
	n, err := readAll(r)
	if err != nil || n != distinct {
		t.Fatalf("read %d chunks (%v), want %d", n, err, distinct)
	}
}

func iotestCopy(w io.Writer, b []byte) error {
	_, err := io.Copy(w, bytes.NewReader(b))
	return err
}

func TestBundleIsDeterministic(t *testing.T) {
	k := testKey(t, 1)
	a, b := publishedBundle(t, k), publishedBundle(t, k)
	// The manifests differ in their creation time; everything after them is equal.
	ra, _ := bundle.NewReader(bytes.NewReader(a), verify.NewKeyring(k.Public()))
	rb, _ := bundle.NewReader(bytes.NewReader(b), verify.NewKeyring(k.Public()))
	if !verify.SameContent(ra.Manifest, rb.Manifest) || len(a)-len(ra.Envelope) != len(b)-len(rb.Envelope) {
		t.Fatal("two bundles of the same directory differ in content")
	}
}

func TestTruncatedBundleIsRejectedWhereverItEnds(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle(t, k)
	trusted := verify.NewKeyring(k.Public())
	for _, cut := range []int{0, 100, 600, len(b) / 3, len(b) / 2, len(b) - 2048} {
		r, err := bundle.NewReader(bytes.NewReader(b[:cut]), trusted)
		if err == nil {
			_, err = readAll(r)
		}
		if !errors.Is(err, verify.ErrRejected) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("bundle cut at %d of %d: %v, want a rejection saying truncated", cut, len(b), err)
		}
	}
}

func TestBundleRejects(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle(t, k)
	if _, err := bundle.NewReader(bytes.NewReader(b), verify.NewKeyring(testKey(t, 2).Public())); !errors.Is(err, verify.ErrRejected) || !strings.Contains(err.Error(), "untrusted key") {
		t.Fatalf("bundle signed by an untrusted key: %v", err)
	}
	var other bytes.Buffer
	tw := tar.NewWriter(&other)
	tw.WriteHeader(&tar.Header{Name: "evil.sh", Size: 2, Mode: 0o755, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	if _, err := bundle.NewReader(&other, verify.NewKeyring(k.Public())); !errors.Is(err, verify.ErrRejected) || !strings.Contains(err.Error(), "not a modelslot bundle") {
		t.Fatalf("tar without a manifest first: %v", err)
	}
}

func TestChunkOutOfOrderIsRejected(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle(t, k)
	// Rewrite the bundle with its first two chunks swapped.
	tr := tar.NewReader(bytes.NewReader(b))
	var entries []*tar.Header
	var bodies [][]byte
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(tr)
		entries, bodies = append(entries, h), append(bodies, body)
	}
	entries[1], entries[2] = entries[2], entries[1]
	bodies[1], bodies[2] = bodies[2], bodies[1]
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for i, h := range entries {
		tw.WriteHeader(h)
		tw.Write(bodies[i])
	}
	tw.Close()
	r, err := bundle.NewReader(&out, verify.NewKeyring(k.Public()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(r); !errors.Is(err, verify.ErrRejected) || !strings.Contains(err.Error(), "next chunk is") {
		t.Fatalf("chunks out of order: %v", err)
	}
}
