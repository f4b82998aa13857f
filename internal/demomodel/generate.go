package demomodel

//go:generate go run ./cmd/gen -out ../../testdata/models

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/safetensors"
)

// Variant describes one generated model directory.
type Variant struct {
	Name    string // directory name under testdata/models
	Version string
	Seed    uint64 // weights seed: variants of one version share it
	Config  Config // behaviour fields; dimensions and names are filled in
}

// Variants are the models of testdata/models. The broken ones are v3
// candidates built on v2's weights, each failing in one way.
var Variants = []Variant{
	{Name: "v1", Version: "v1", Seed: 1},
	{Name: "v2", Version: "v2", Seed: 2},
	{Name: "crash", Version: "v3-crash", Seed: 2, Config: Config{Behaviour: Crash}},
	{Name: "hang", Version: "v3-hang", Seed: 2, Config: Config{Behaviour: Hang, HangAfterMS: 500}},
	{Name: "slow", Version: "v3-slow", Seed: 2, Config: Config{Behaviour: Slow, DelayMS: 2000}},
	{Name: "fat", Version: "v3-fat", Seed: 2, Config: Config{Behaviour: Fat, AllocMiB: 300}},
	{Name: "wrong", Version: "v3-wrong", Seed: 2, Config: Config{Behaviour: Wrong}},
}

// Dimensions of the generated MLP.
const (
	inputDim, hiddenDim, outputDim = 4, 16, 3
)

// ProbeInput is the request every variant's probe/input.json holds.
var ProbeInput = [][]float64{{0.5, -1, 0.25, 2}, {1, 1, 1, 1}, {-0.75, 0.5, 1.5, -2}}

// Write generates the model directory of v under dir/v.Name.
func Write(dir string, v Variant) error {
	root := filepath.Join(dir, v.Name)
	c := v.Config
	c.Model, c.Version, c.Format, c.Weights = "demo", v.Version, "mlp-safetensors", "model.safetensors"
	c.InputDim, c.HiddenDim, c.OutputDim = inputDim, hiddenDim, outputDim
	tensors := weights(v.Seed)
	correct := &MLP{Config: c}
	correct.setWeights(tensors)
	expected, err := correct.Forward(ProbeInput)
	if err != nil {
		return err
	}
	if c.Behaviour == Wrong {
		// A damaged training run: the output bias is off, the probe still
		// holds the answers of the good weights.
		tensors["fc2.bias"] = shift(tensors["fc2.bias"], 0.5)
	}
	st, err := safetensors.Marshal(map[string]string{"model": c.Model, "version": c.Version}, tensors)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "probe"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, c.Weights), st, 0o644); err != nil {
		return err
	}
	return writeJSON(root, map[string]any{
		ConfigFile:            c,
		"probe/input.json":    map[string]any{"inputs": ProbeInput},
		"probe/expected.json": map[string]any{"outputs": round(expected)},
	})
}

func writeJSON(root string, files map[string]any) error {
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, name), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func weights(seed uint64) map[string]safetensors.Tensor {
	r := rand.New(rand.NewPCG(seed, 0x6d6f64656c736c6f))
	gen := func(shape ...int) safetensors.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.5)
		}
		return safetensors.F32(shape, v)
	}
	return map[string]safetensors.Tensor{
		"fc1.weight": gen(hiddenDim, inputDim), "fc1.bias": gen(hiddenDim),
		"fc2.weight": gen(outputDim, hiddenDim), "fc2.bias": gen(outputDim),
	}
}

func (m *MLP) setWeights(t map[string]safetensors.Tensor) {
	f := &safetensors.File{Tensors: t}
	m.w1, _, _ = f.Float32("fc1.weight")
	m.b1, _, _ = f.Float32("fc1.bias")
	m.w2, _, _ = f.Float32("fc2.weight")
	m.b2, _, _ = f.Float32("fc2.bias")
}

func shift(t safetensors.Tensor, by float32) safetensors.Tensor {
	f := &safetensors.File{Tensors: map[string]safetensors.Tensor{"t": t}}
	v, shape, _ := f.Float32("t")
	for i := range v {
		v[i] += by
	}
	return safetensors.F32(shape, v)
}

// round keeps expected outputs readable; 1e-6 is far inside the 1e-4 tolerance.
func round(rows [][]float64) [][]float64 {
	for _, r := range rows {
		for i, v := range r {
			r[i] = math.Round(v*1e6) / 1e6
		}
	}
	return rows
}
