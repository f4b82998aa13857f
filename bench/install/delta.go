package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// delta is measurement 2: 512 MiB of 64 equal tensors, 6 of them changed;
// bytes on the wire for the update against the changed bytes (raw, and
// compressed at zstd level 3: the least any transfer of them could cost).
func (b *bench) delta() error {
	const tensors, size = 64, 8 << 20
	changed := []int{3, 10, 22, 35, 47, 60}
	src := filepath.Join(b.dir, "model-delta")
	seeds := seedsFrom(1000, tensors)
	if err := writeModel(src, size, seeds); err != nil {
		return err
	}
	if _, err := b.publish(src, "delta", "v1"); err != nil {
		return err
	}
	state := filepath.Join(b.dir, "state-delta")
	defer os.RemoveAll(state)
	if _, _, err := b.install("delta", state); err != nil {
		return err
	}
	old := filepath.Join(b.dir, "old.safetensors") // the seed for zsync and casync
	if err := os.Rename(filepath.Join(src, modelFile), old); err != nil {
		return err
	}
	for _, i := range changed {
		seeds[i] += 1 << 32
	}
	if err := writeModel(src, size, seeds); err != nil {
		return err
	}
	if _, err := b.publish(src, "delta", "v2"); err != nil {
		return err
	}
	minimum, err := changedCompressed(filepath.Join(src, modelFile), changed, size)
	if err != nil {
		return err
	}
	before := b.served.Load()
	if _, _, err := b.install("delta", state); err != nil {
		return err
	}
	wire := b.served.Load() - before
	raw := int64(len(changed) * size)
	fmt.Printf("== 2. update of 512 MiB (64 tensors of 8 MiB), %d changed: %.2f MB on the wire\n", len(changed), float64(wire)/1e6)
	fmt.Printf("   vs changed bytes %.2f MB: %.3fx (goal <= 1.1x); vs changed bytes compressed (as published) %.2f MB: %.3fx\n",
		float64(raw)/1e6, float64(wire)/float64(raw), float64(minimum)/1e6, float64(wire)/float64(minimum))
	b.baselines(old, filepath.Join(src, modelFile), raw)
	return nil
}

// changedCompressed is the size of the changed tensors compressed at level 3.
func changedCompressed(name string, changed []int, size int64) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var hl [8]byte
	if _, err := f.ReadAt(hl[:], 0); err != nil {
		return 0, err
	}
	base := 8 + int64(binary.LittleEndian.Uint64(hl[:]))
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	buf := make([]byte, size)
	var n int64
	for _, i := range changed {
		if _, err := f.ReadAt(buf, base+int64(i)*size); err != nil {
			return 0, err
		}
		n += int64(len(enc.EncodeAll(buf, nil)))
	}
	return n, nil
}
