package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The delta cases: each writes v1 and v2 of one model into two directories
// and returns the changed bytes (what any update must at least move). Sizes
// scale with s, the size of the "128 MiB" file of the issue (-delta-mib).
type deltaCase struct {
	name  string
	build func(s int64, v1, v2 string) (changed int64, err error)
}

var deltaCases = []deltaCase{
	{"opaque: two 8 MiB regions rewritten in 128 MiB", caseRegions},
	{"opaque: 24 edits of 4 KiB over 256 MiB", caseScattered},
	{"opaque: 100 B inserted 1 MiB into 128 MiB", caseInsert},
	{"GGUF: metadata grew, one tensor changed", caseGGUF},
	{"safetensors: 12 tensors of 16 KiB + one 4 MiB changed", caseSmallTensors},
	{"safetensors + config.json: config only", caseConfig},
	{"safetensors: fine-tune, every tensor changed", caseFineTune},
	{"safetensors: 6 of 64 tensors (512 MiB) changed", caseIssue3},
}

// opaqueFile is the name of the opaque cases' file: no format publish knows.
const opaqueFile = "model.bin"

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// overwrite writes size bytes of stream seed at off in the file name.
func overwrite(name string, off, size int64, seed uint64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := writeRandomAt(f, off, size, seed); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func caseRegions(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	a, b := filepath.Join(v1, opaqueFile), filepath.Join(v2, opaqueFile)
	if err := writeRandomFile(a, s, 11); err != nil {
		return 0, err
	}
	if err := copyFile(a, b); err != nil {
		return 0, err
	}
	region := s / 16
	for i, off := range []int64{s/4 + 4097, s*5/8 + 12289} {
		if err := overwrite(b, off, region, 12+uint64(i)); err != nil {
			return 0, err
		}
	}
	return 2 * region, nil
}

func caseScattered(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	size := 2 * s
	a, b := filepath.Join(v1, opaqueFile), filepath.Join(v2, opaqueFile)
	if err := writeRandomFile(a, size, 21); err != nil {
		return 0, err
	}
	if err := copyFile(a, b); err != nil {
		return 0, err
	}
	const edits, edit = 24, 4 << 10
	f, err := os.OpenFile(b, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	spacing := size / edits
	for i := range int64(edits) {
		// Spread over the file, not at block-aligned places.
		off := i*spacing + (i*7919*4096+i*131)%(spacing-edit)
		if _, err := f.WriteAt(randomBytes(edit, 2200+uint64(i)), off); err != nil {
			return 0, err
		}
	}
	return edits * edit, f.Close()
}

func caseInsert(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	a, b := filepath.Join(v1, opaqueFile), filepath.Join(v2, opaqueFile)
	if err := writeRandomFile(a, s, 31); err != nil {
		return 0, err
	}
	at := s / 128
	old, err := os.ReadFile(a)
	if err != nil {
		return 0, err
	}
	grown := append(append(append([]byte{}, old[:at]...), randomBytes(100, 32)...), old[at:]...)
	return 100, os.WriteFile(b, grown, 0o644)
}

// ggufModel is a llama-like GGUF: token list metadata and 32 F32 tensors of
// s/32 bytes; tokens sets the metadata's size, changed reseeds one tensor.
func ggufModel(name string, s int64, tokens int, extra bool, changed int) (int64, error) {
	toks := make([]string, tokens)
	for i := range toks {
		toks[i] = fmt.Sprintf("tok%05d", i)
	}
	kv := []ggufKV{
		{key: "general.architecture", kind: ggufString, str: "llama"},
		{key: "general.name", kind: ggufString, str: "modelslot-bench"},
		{key: "llama.block_count", kind: ggufUint32, u32: 32},
		{key: "tokenizer.ggml.tokens", kind: ggufArray, strings: toks},
	}
	if extra {
		kv = append(kv, ggufKV{key: "general.description", kind: ggufString, str: "fine-tuned for the bench; a longer description grows the header"})
	}
	var ts []ggufTensor
	for i := range 32 {
		seed := uint64(4000 + i)
		if i == changed {
			seed += 1 << 32
		}
		ts = append(ts, ggufTensor{name: fmt.Sprintf("blk.%d.ffn.weight", i), size: s / 32, seed: seed})
	}
	return writeGGUF(name, 32, kv, ts)
}

func caseGGUF(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	d1, err := ggufModel(filepath.Join(v1, "model.gguf"), s, 4000, false, -1)
	if err != nil {
		return 0, err
	}
	d2, err := ggufModel(filepath.Join(v2, "model.gguf"), s, 6000, true, 13)
	if err != nil {
		return 0, err
	}
	return d2 - d1 + s/32, nil
}

// layered is a safetensors model of layers of one big tensor (s/32 bytes)
// and two 16 KiB norms; seed shifts the streams of the tensors it selects.
func layered(name string, s int64, layers int, reseed func(tensor string) bool) error {
	var ts []stTensor
	add := func(n string, size int64) {
		seed := uint64(5000 + len(ts))
		if reseed(n) {
			seed += 1 << 32
		}
		ts = append(ts, stTensor{name: n, size: size, seed: seed})
	}
	for l := range layers {
		add(fmt.Sprintf("model.layers.%d.input_layernorm.weight", l), 16<<10)
		add(fmt.Sprintf("model.layers.%d.mlp.weight", l), s/32)
		add(fmt.Sprintf("model.layers.%d.post_layernorm.weight", l), 16<<10)
	}
	_, err := writeSafetensors(name, ts)
	return err
}

func none(string) bool { return false }

func caseSmallTensors(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	if err := layered(filepath.Join(v1, "model.safetensors"), s, 28, none); err != nil {
		return 0, err
	}
	changed := map[string]bool{"model.layers.17.mlp.weight": true}
	for l := 0; l < 24; l += 2 {
		changed[fmt.Sprintf("model.layers.%d.input_layernorm.weight", l)] = true
	}
	err := layered(filepath.Join(v2, "model.safetensors"), s, 28, func(n string) bool { return changed[n] })
	return 12*16<<10 + s/32, err
}

func writeConfig(dir string, ctx int) (int64, error) {
	js, err := json.MarshalIndent(map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "hidden_size": 2048, "num_hidden_layers": 28,
		"max_position_embeddings": ctx, "rope_theta": 500000.0, "torch_dtype": "float32",
	}, "", "  ")
	if err != nil {
		return 0, err
	}
	return int64(len(js)), os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644)
}

func caseConfig(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	for _, d := range []string{v1, v2} {
		if err := layered(filepath.Join(d, "model.safetensors"), s, 28, none); err != nil {
			return 0, err
		}
	}
	if _, err := writeConfig(v1, 4096); err != nil {
		return 0, err
	}
	return writeConfig(v2, 8192)
}

func caseFineTune(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	if err := layered(filepath.Join(v1, "model.safetensors"), s, 28, none); err != nil {
		return 0, err
	}
	err := layered(filepath.Join(v2, "model.safetensors"), s, 28, func(string) bool { return true })
	return 28 * (s/32 + 32<<10), err
}

func caseIssue3(s int64, v1, v2 string) (int64, error) {
	if err := mkdirs(v1, v2); err != nil {
		return 0, err
	}
	const tensors = 64
	size := 4 * s / tensors
	changed := map[int]bool{3: true, 10: true, 22: true, 35: true, 47: true, 60: true}
	for v, dir := range []string{v1, v2} {
		var ts []stTensor
		for i := range tensors {
			seed := uint64(6000 + i)
			if v == 1 && changed[i] {
				seed += 1 << 32
			}
			ts = append(ts, stTensor{name: fmt.Sprintf("layer%02d.weight", i), size: size, seed: seed})
		}
		if _, err := writeSafetensors(filepath.Join(dir, "model.safetensors"), ts); err != nil {
			return 0, err
		}
	}
	return int64(len(changed)) * size, nil
}
