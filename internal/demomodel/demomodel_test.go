package demomodel

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func load(t *testing.T, dir string) (*MLP, [][]float64) {
	t.Helper()
	m, err := Load(func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) })
	if err != nil {
		t.Fatal(err)
	}
	var exp struct{ Outputs [][]float64 }
	b, err := os.ReadFile(filepath.Join(dir, "probe/expected.json"))
	if err != nil || json.Unmarshal(b, &exp) != nil {
		t.Fatalf("read expected: %v", err)
	}
	return m, exp.Outputs
}

func maxDiff(a, b [][]float64) float64 {
	d := 0.0
	for i := range a {
		for j := range a[i] {
			d = max(d, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return d
}

// The committed models must be what the generator writes, and each must
// answer its probe as its variant says.
func TestCommittedModelsMatchGeneratorAndProbes(t *testing.T) {
	tmp := t.TempDir()
	for _, v := range Variants {
		if err := Write(tmp, v); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{ConfigFile, "model.safetensors", "probe/input.json", "probe/expected.json"} {
			want, _ := os.ReadFile(filepath.Join(tmp, v.Name, f))
			got, err := os.ReadFile(filepath.Join("../../testdata/models", v.Name, f))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("testdata/models/%s/%s differs from the generator: run go generate ./internal/demomodel", v.Name, f)
			}
		}
		m, expected := load(t, filepath.Join(tmp, v.Name))
		out, err := m.Forward(ProbeInput)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(out, expected); (d > 1e-4) != (v.Config.Behaviour == Wrong) {
			t.Errorf("%s: probe differs by %g", v.Name, d)
		}
	}
}

func TestVersionsAnswerDifferently(t *testing.T) {
	_, e1 := load(t, "../../testdata/models/v1")
	_, e2 := load(t, "../../testdata/models/v2")
	if maxDiff(e1, e2) < 0.1 {
		t.Fatal("v1 and v2 answer alike: a test could not tell which one served")
	}
}

func TestLoadRejectsShapeMismatchAndForwardRejectsBadRows(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Variants[0]); err != nil {
		t.Fatal(err)
	}
	m, _ := load(t, filepath.Join(dir, "v1"))
	if _, err := m.Forward([][]float64{{1, 2}}); err == nil {
		t.Error("a row of 2 values was accepted by a 4-input model")
	}
	cfg := filepath.Join(dir, "v1", ConfigFile)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(b, []byte(`"hidden_dim": 16`), []byte(`"hidden_dim": 8`), 1), 0o644)
	if _, err := Load(func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, "v1", n)) }); err == nil {
		t.Error("weights that disagree with the config were loaded")
	}
}
