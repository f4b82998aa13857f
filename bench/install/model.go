package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// tensorBytes fills b with float32 weights drawn from N(0, 0.02): like trained
// weights, they compress only a little (the exponent bytes).
func tensorBytes(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := 0; i+4 <= len(b); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(r.NormFloat64()*0.02)))
	}
}

// modelFile is the weights file the bench models have: a safetensors file, as
// real models ship, so the publisher can cut at tensor boundaries.
const modelFile = "model.safetensors"

// writeModel writes dir/model.safetensors: len(seeds) float32 tensors of size
// bytes, tensor i drawn from seeds[i], so changing one seed changes that tensor
// only.
func writeModel(dir string, size int64, seeds []uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, modelFile))
	if err != nil {
		return err
	}
	defer f.Close()
	base, err := writeHeader(f, size, len(seeds))
	if err != nil {
		return err
	}
	next := make(chan int)
	errs := make(chan error, len(seeds))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, size)
			for i := range next {
				tensorBytes(buf, seeds[i])
				if _, err := f.WriteAt(buf, base+int64(i)*size); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return f.Sync()
}

// seedsFrom returns n distinct seeds starting at base.
func seedsFrom(base uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = base + uint64(i)
	}
	return s
}

// writeHeader writes the safetensors header for n float32 tensors of size
// bytes and returns where the data starts.
func writeHeader(f *os.File, size int64, n int) (int64, error) {
	h := map[string]any{}
	for i := range n {
		h[fmt.Sprintf("layer%02d.weight", i)] = map[string]any{
			"dtype": "F32", "shape": []int64{size / 4}, "data_offsets": []int64{int64(i) * size, int64(i+1) * size}}
	}
	js, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var head [8]byte
	binary.LittleEndian.PutUint64(head[:], uint64(len(js)))
	if _, err := f.Write(append(head[:], js...)); err != nil {
		return 0, err
	}
	return int64(8 + len(js)), nil
}
