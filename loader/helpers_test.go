package loader

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// answerModel is a model whose answer is the file answer.json of its slot:
// enough to tell which slot a model was read from.
type answerModel struct {
	answer []byte
	closed *atomic.Int32
}

func (m *answerModel) Probe(_ context.Context, _ []byte) ([]byte, error) { return m.answer, nil }
func (m *answerModel) Close() error                                      { m.closed.Add(1); return nil }

func openAnswer(closed *atomic.Int32) OpenFunc[*answerModel] {
	return func(_ context.Context, s *Slot) (*answerModel, error) {
		b, err := s.ReadFile("answer.json")
		if err != nil {
			return nil, err
		}
		return &answerModel{answer: b, closed: closed}, nil
	}
}

// writeSlot fills dir like modelslot does: model files, probe, manifest.
// answer is what the model answers; expected what its probe expects.
func writeSlot(t *testing.T, dir, version string, answer, expected float64) {
	t.Helper()
	files := map[string]any{
		"answer.json":         map[string]any{"outputs": []float64{answer}, "version": version},
		"probe/input.json":    map[string]any{"inputs": []float64{1}},
		"probe/expected.json": map[string]any{"outputs": []float64{expected}},
		ManifestPath: map[string]any{"schema": 1, "model": "demo", "version": version, "sequence": 1,
			"files": []any{}, "probe": map[string]any{"input": "probe/input.json", "expected": "probe/expected.json", "tolerance": 0.001}},
	}
	for name, v := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		b, _ := json.Marshal(v)
		must(t, os.WriteFile(p, b, 0o644))
	}
}

// swap points link at target the way modelslot does: a temp symlink renamed
// over the link.
func swap(t *testing.T, link, target string) {
	t.Helper()
	tmp := fmt.Sprintf("%s.tmp%d", link, time.Now().UnixNano())
	must(t, os.Symlink(target, tmp))
	must(t, os.Rename(tmp, link))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// twoSlots makes <state>/slots/{a,b} holding v1 and v2 and a link to a.
func twoSlots(t *testing.T) (link, a, b string) {
	state := t.TempDir()
	a, b = filepath.Join(state, "slots/a"), filepath.Join(state, "slots/b")
	writeSlot(t, a, "v1", 1, 1)
	writeSlot(t, b, "v2", 2, 2)
	link = filepath.Join(state, "current")
	swap(t, link, a)
	return link, a, b
}
