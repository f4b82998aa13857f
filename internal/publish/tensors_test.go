package publish

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/safetensors"
)

func tensor(seed uint64, n int) safetensors.Tensor {
	r := rand.New(rand.NewPCG(seed, 3))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return safetensors.F32([]int{n}, v)
}

// TestChangedTensorCostsOnlyItsOwnChunks: with cuts at tensor boundaries, every
// new chunk of the update lies inside the changed tensor.
func TestChangedTensorCostsOnlyItsOwnChunks(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	names := []string{"a", "b", "c", "d"}
	tensors := map[string]safetensors.Tensor{}
	for i, n := range names {
		tensors[n] = tensor(uint64(i), 40_000) // 160 KB each
	}
	write := func() {
		b, err := safetensors.Marshal(nil, tensors)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644)
	}
	write()
	v1, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	tensors["b"] = tensor(99, 40_000)
	write()
	v2, err := Publish(context.Background(), dir, opts(repo, "v2", k))
	if err != nil {
		t.Fatal(err)
	}
	cuts := tensorCuts(filepath.Join(dir, "model.safetensors"))
	if len(cuts) != 9 {
		t.Fatalf("cuts %v: want the data start and both ends of 4 tensors", cuts)
	}
	if v2.NewBytes != 160_000 {
		t.Fatalf("the update has %d bytes of new chunks; the changed tensor is 160000", v2.NewBytes)
	}
	if v1.NewBytes != v1.Manifest.TotalSize() {
		t.Fatalf("v1 stored %d new bytes of %d", v1.NewBytes, v1.Manifest.TotalSize())
	}
}
