package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Versions are the labels the driver cycles through. Each label always names
// the same content (modelslot refuses one label with two contents), so the
// host can generate the same trees to pre-install v1 into the base image.
var Versions = []string{"v1", "v2", "v3", "v4"}

// modelFiles is the shape of every test model: a few small files and a few
// hundred KiB of weights, so one install takes well under a second even under
// software emulation. Odd versions also carry a 3 MiB file: a large write is
// where delayed allocation leaves a file torn (name durable, data not) when
// a fsync is missing.
func modelFiles(version string) map[string]int {
	files := map[string]int{
		"config.json":        300,
		"tokenizer.txt":      20 << 10,
		"weights/layer0.bin": 256 << 10,
		"weights/layer1.bin": 128 << 10,
		"probe/input.json":   64,
	}
	if version == "v1" || version == "v3" {
		files["weights/big.bin"] = 3 << 20
	}
	return files
}

// GenerateModels writes every version under root/<version>, deterministically.
func GenerateModels(root string) error {
	for i, v := range Versions {
		for name, size := range modelFiles(v) {
			// The seed depends on version and file, so no two versions share
			// content: a mix-up of slots would show as a digest mismatch.
			var seed [32]byte
			copy(seed[:], fmt.Sprintf("%d/%s", i, name))
			data := make([]byte, size)
			rand.NewChaCha8(seed).Read(data)
			p := filepath.Join(root, v, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return fmt.Errorf("generate model %s: %w", v, err)
			}
		}
	}
	return nil
}
