package bundle_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/bundle"

	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

// FuzzReader feeds arbitrary bytes to the bundle reader, as a USB stick or a
// pipe might: no panic, no unbounded allocation, and every error is a rejection
// or a read error — never a chunk that is not the manifest's next one.
func FuzzReader(f *testing.F) {
	k := testKey(f, 1)
	f.Add(tinyBundle(f, k))
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	trusted := verify.NewKeyring(k.Public())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := bundle.NewReader(bytes.NewReader(data), trusted)
		if err != nil {
			return
		}
		order := r.Manifest.DistinctChunks()
		for i := 0; ; i++ {
			c, z, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				return
			}
			if c != order[i] {
				t.Fatalf("chunk %d is %+v, the manifest's is %+v", i, c, order[i])
			}
			io.Copy(io.Discard, z)
		}
	})
}

// tinyBundle is a valid bundle of a few hundred bytes.
func tinyBundle(tb testing.TB, k *verify.PrivateKey) []byte {
	dir := tb.TempDir()
	os.WriteFile(filepath.Join(dir, "a.bin"), bytes.Repeat([]byte("weights "), 40), 0o644)
	os.WriteFile(filepath.Join(dir, "b.bin"), []byte("config"), 0o644)
	return writeBundle1(tb, dir, k, chunker.Params{Min: 64, Avg: 128, Max: 256})
}
