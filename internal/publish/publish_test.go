package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

var testParams = chunker.Params{Min: 16 << 10, Avg: 32 << 10, Max: 64 << 10}

func testKey(t testing.TB) *verify.PrivateKey {
	t.Helper()
	k, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// modelDir writes a small model: a random weights file, a config and a probe.
func modelDir(t testing.TB, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 1))
	w := make([]byte, 600<<10)
	for i := range w {
		w[i] = byte(r.Uint32() % 16) // compressible, like real weights a little
	}
	write(t, dir, "weights.bin", w)
	write(t, dir, "config.json", []byte(`{"layers":2}`))
	write(t, dir, "probe/input.json", []byte(`{"x":[1]}`))
	write(t, dir, "probe/expected.json", []byte(`{"y":[2]}`))
	return dir
}

func write(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func opts(repo, version string, k *verify.PrivateKey) Options {
	return Options{Repo: repo, Model: "demo", Version: version, Channel: "stable", Key: k, Params: testParams}
}

func TestPublishWritesAVerifiableRepository(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	res, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	trusted := verify.NewKeyring(k.Public())
	env, _ := os.ReadFile(filepath.Join(repo, "demo/manifests/v1.json"))
	m, err := verify.OpenManifest(env, trusted)
	if err != nil {
		t.Fatalf("stored manifest does not verify: %v", err)
	}
	if m.Sequence != 1 || m.Insecure || m.Probe == nil || m.Probe.Input != "probe/input.json" {
		t.Fatalf("manifest: sequence %d, insecure %v, probe %+v", m.Sequence, m.Insecure, m.Probe)
	}
	ch, _ := os.ReadFile(filepath.Join(repo, "demo/channels/stable.json"))
	c, err := verify.OpenChannel(ch, trusted)
	if err != nil {
		t.Fatalf("stored channel does not verify: %v", err)
	}
	sum := sha256.Sum256(env)
	if c.ManifestSHA256 != hex.EncodeToString(sum[:]) || c.CheckManifest(m) != nil {
		t.Fatalf("channel %+v does not name the stored manifest", c)
	}
	if res.Chunks < 10 || res.NewChunks != res.Chunks {
		t.Fatalf("chunks %d, new %d: want many, all new", res.Chunks, res.NewChunks)
	}
	mustInstallable(t, repo, m, dir)
}

func TestSecondVersionReusesChunksAndRaisesSequence(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	first, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[300<<10:], bytes.Repeat([]byte{0xff}, 1000)) // one "tensor" changed
	write(t, dir, "weights.bin", w)
	res, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Sequence != 2 {
		t.Fatalf("sequence %d, want 2", res.Manifest.Sequence)
	}
	if res.NewChunks == 0 || res.NewChunks > 3 || res.StoredBytes >= first.StoredBytes/4 {
		t.Fatalf("a small change stored %d new chunks (%d bytes, first version %d)", res.NewChunks, res.StoredBytes, first.StoredBytes)
	}
}

func TestPublishRefusesToRewriteOrGoBack(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("republishing v1 = %v, want a refusal", err)
	}
	o := opts(repo, "v0", k)
	o.Sequence = 1
	if _, err := Publish(context.Background(), dir, o); err == nil || !strings.Contains(err.Error(), "not above") {
		t.Fatalf("a sequence not above the published one = %v, want a refusal", err)
	}
}

func TestPublishRefusesSymlinks(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Publish with a symlink = %v", err)
	}
	if _, err := os.Stat(filepath.Join(repo, "demo/manifests/v1.json")); err == nil {
		t.Fatal("a manifest was written for a refused directory")
	}
}

// A repository whose highest sequence is the bound refuses the next version
// instead of wrapping to 0, which every device would take for a downgrade;
// a sequence over the bound is refused before anything is written.
func TestPublishRefusesToWrapTheSequence(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
	o := opts(repo, "v1", k)
	o.Sequence = verify.MaxSequence + 1
	if _, err := Publish(context.Background(), dir, o); !errors.Is(err, verify.ErrRejected) {
		t.Fatalf("sequence over the bound = %v, want a rejection", err)
	}
	o.Sequence = verify.MaxSequence
	if _, err := Publish(context.Background(), dir, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(context.Background(), dir, opts(repo, "v2", k)); !errors.Is(err, ErrSequenceExhausted) {
		t.Fatalf("publish after the last sequence = %v, want ErrSequenceExhausted", err)
	}
}
