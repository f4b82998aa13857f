// Package demomodel is the tiny model modelslot's demo server serves: a
// two-layer perceptron (dense → ReLU → dense) stored in safetensors, with a
// config.json that names its version and, for the broken test variants, the
// behaviour the demo server acts out.
//
// Invariant: an MLP returned by Load has weights whose shapes agree with its
// config, so Forward never indexes out of range.
package demomodel

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelslot/modelslot/internal/safetensors"
)

// Behaviours a test variant's config may declare; the demo server acts them out.
const (
	Normal = ""      // serves correctly
	Crash  = "crash" // fails on load
	Hang   = "hang"  // hangs after load: stops answering, so the watchdog stops
	Slow   = "slow"  // answers DelayMS late
	Fat    = "fat"   // allocates and touches AllocMiB at load
	Wrong  = "wrong" // weights damaged: answers differ from the probe's expected output
)

// ConfigFile is the name of the config inside a model directory.
const ConfigFile = "config.json"

// Config is config.json of a model directory.
type Config struct {
	Model       string `json:"model"`
	Version     string `json:"version"`
	Format      string `json:"format"` // "mlp-safetensors"
	Weights     string `json:"weights"`
	InputDim    int    `json:"input_dim"`
	HiddenDim   int    `json:"hidden_dim"`
	OutputDim   int    `json:"output_dim"`
	Behaviour   string `json:"behaviour,omitempty"`
	DelayMS     int    `json:"delay_ms,omitempty"`      // Slow: extra latency per request
	AllocMiB    int    `json:"alloc_mib,omitempty"`     // Fat: memory held while loaded
	HangAfterMS int    `json:"hang_after_ms,omitempty"` // Hang: time after load until it hangs
}

// MLP is a loaded model: y = W2·relu(W1·x + b1) + b2.
type MLP struct {
	Config Config
	w1, b1 []float32 // hidden×input, hidden
	w2, b2 []float32 // output×hidden, output
}

// ErrShape marks an input that does not fit the model.
var ErrShape = errors.New("input does not fit the model")

// Load reads config.json and the weights through read, which opens a file of
// the model directory by its slash-separated name.
func Load(read func(name string) ([]byte, error)) (*MLP, error) {
	b, err := read(ConfigFile)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	m := &MLP{}
	if err := json.Unmarshal(b, &m.Config); err != nil {
		return nil, fmt.Errorf("model config %s is not valid JSON: %w", ConfigFile, err)
	}
	c := m.Config
	if c.Format != "mlp-safetensors" || c.InputDim <= 0 || c.HiddenDim <= 0 || c.OutputDim <= 0 {
		return nil, fmt.Errorf("model config: want format mlp-safetensors and positive dimensions, got %q %d/%d/%d",
			c.Format, c.InputDim, c.HiddenDim, c.OutputDim)
	}
	wb, err := read(c.Weights)
	if err != nil {
		return nil, fmt.Errorf("read model weights: %w", err)
	}
	f, err := safetensors.Parse(wb)
	if err != nil {
		return nil, fmt.Errorf("model weights %s: %w", c.Weights, err)
	}
	want := map[string][]int{
		"fc1.weight": {c.HiddenDim, c.InputDim}, "fc1.bias": {c.HiddenDim},
		"fc2.weight": {c.OutputDim, c.HiddenDim}, "fc2.bias": {c.OutputDim},
	}
	dst := map[string]*[]float32{"fc1.weight": &m.w1, "fc1.bias": &m.b1, "fc2.weight": &m.w2, "fc2.bias": &m.b2}
	for name, shape := range want {
		v, got, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("model weights %s: %w", c.Weights, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("model weights %s: tensor %s has shape %v, config says %v", c.Weights, name, got, shape)
		}
		*dst[name] = v
	}
	return m, nil
}

// Forward computes the outputs for a batch of inputs.
func (m *MLP) Forward(inputs [][]float64) ([][]float64, error) {
	c := m.Config
	out := make([][]float64, len(inputs))
	hidden := make([]float32, c.HiddenDim)
	for r, x := range inputs {
		if len(x) != c.InputDim {
			return nil, fmt.Errorf("%w: row %d has %d values, the model takes %d", ErrShape, r, len(x), c.InputDim)
		}
		for h := range hidden {
			s := m.b1[h]
			for i, v := range x {
				s += m.w1[h*c.InputDim+i] * float32(v)
			}
			hidden[h] = max(s, 0)
		}
		out[r] = make([]float64, c.OutputDim)
		for o := range out[r] {
			s := m.b2[o]
			for h, v := range hidden {
				s += m.w2[o*c.HiddenDim+h] * v
			}
			out[r][o] = float64(s)
		}
	}
	return out, nil
}
