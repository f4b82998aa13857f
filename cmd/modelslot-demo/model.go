package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/demomodel"
	"github.com/modelslot/modelslot/loader"
)

// model is one loaded MLP with the version of the slot it came from, acting
// out the behaviour its config declares (see demomodel's variants).
type model struct {
	mlp     *demomodel.MLP
	name    string
	version string
	slot    string
	delay   time.Duration // Slow
	ballast []byte        // Fat: held and touched so the resident set really grows
	mu      sync.RWMutex  // every answer holds it shared; Hang takes it and never gives it back
	hang    *time.Timer
}

// errBadInput marks a request the model cannot answer; the server says 400.
var errBadInput = errors.New("bad request")

// openModel loads the model of one slot; it is the loader's OpenFunc.
func openModel(_ context.Context, s *loader.Slot) (*model, error) {
	mlp, err := demomodel.Load(s.ReadFile)
	if err != nil {
		return nil, err
	}
	m := &model{mlp: mlp, name: s.Model, version: s.Version, slot: s.Dir}
	if m.name == "" {
		m.name = mlp.Config.Model
	}
	c := mlp.Config
	switch c.Behaviour {
	case demomodel.Crash:
		return nil, fmt.Errorf("model %s declares behaviour %q: failing on load, as this test variant asks", s.Version, c.Behaviour)
	case demomodel.Slow:
		m.delay = time.Duration(c.DelayMS) * time.Millisecond
	case demomodel.Fat:
		m.ballast = make([]byte, c.AllocMiB<<20)
		for i := 0; i < len(m.ballast); i += 4096 {
			m.ballast[i] = 1
		}
	case demomodel.Hang:
		m.hang = time.AfterFunc(time.Duration(c.HangAfterMS)*time.Millisecond, m.mu.Lock)
	}
	return m, nil
}

type request struct {
	Inputs [][]float64 `json:"inputs"`
}

type response struct {
	Outputs [][]float64 `json:"outputs"`
	Version string      `json:"version"`
	Model   string      `json:"model"`
}

// answer runs one request body through the model.
func (m *model) answer(ctx context.Context, body []byte) ([]byte, error) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil || len(req.Inputs) == 0 {
		return nil, fmt.Errorf(`%w: want {"inputs":[[numbers...],...]}`, errBadInput)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out, err := m.mlp.Forward(req.Inputs)
	if errors.Is(err, demomodel.ErrShape) {
		return nil, fmt.Errorf("%w: %v", errBadInput, err)
	} else if err != nil {
		return nil, err
	}
	return json.Marshal(response{Outputs: out, Version: m.version, Model: m.name})
}

// Probe lets the loader check a new model before it serves.
func (m *model) Probe(ctx context.Context, input []byte) ([]byte, error) { return m.answer(ctx, input) }

// alive returns the version once the model can take a request; a hung model
// never returns.
func (m *model) alive() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.version
}

// Close drops the model's memory; the loader calls it after the last request.
func (m *model) Close() error {
	if m.hang != nil {
		m.hang.Stop()
	}
	m.ballast = nil
	return nil
}
