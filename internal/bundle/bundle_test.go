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

// makeBundle publishes a small model with a repeated block (so a chunk is used
// twice) and returns the bundle's bytes.
func makeBundle(t *testing.T, k *verify.PrivateKey) []byte {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 300<<10)
	for i := range w {
		w[i] = byte(r.Uint32())
	}
	os.WriteFile(filepath.Join(dir, "a.bin"), w, 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), w, 0o644) // the same chunks again
	out := filepath.Join(t.TempDir(), "m"+bundle.Ext)
	_, err := publish.CreateBundle(context.Background(), out, dir, publish.Options{Model: "demo", Version: "v1", Key: k,
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
	a, b := makeBundle(t, k), makeBundle(t, k)
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
