package loader

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestOpenSlotKeepsReadingTheSlotItOpenedAfterTheLinkMoves(t *testing.T) {
	link, a, b := twoSlots(t)
	s, err := OpenSlot(link, 1e-4)
	must(t, err)
	defer CloseSlot(s)
	swap(t, link, b)
	got, err := s.ReadFile("answer.json")
	must(t, err)
	if s.Dir != a || s.Version != "v1" || !strings.Contains(string(got), `"v1"`) {
		t.Fatalf("slot %s version %s read %s after the swap; want everything from %s", s.Dir, s.Version, got, a)
	}
	if s.Probe.Tolerance != 0.001 || s.Probe.Input != "probe/input.json" || s.Bare {
		t.Errorf("probe = %+v bare=%v, want the manifest's", s.Probe, s.Bare)
	}
}

func TestOpenSlotRefusesPathsOutOfTheSlot(t *testing.T) {
	link, a, _ := twoSlots(t)
	must(t, os.Symlink("../b/answer.json", filepath.Join(a, "escape")))
	s, err := OpenSlot(link, 1e-4)
	must(t, err)
	defer CloseSlot(s)
	for _, name := range []string{"../b/answer.json", "escape", "/etc/passwd"} {
		if _, err := s.ReadFile(name); err == nil {
			t.Errorf("read %q outside the slot", name)
		}
	}
}

func TestBareDirectoryVersionComesFromTheModelsOwnMetadata(t *testing.T) {
	dir := t.TempDir()
	// safetensors: 8-byte length, then a header carrying the version
	header := `{"__metadata__":{"model":"demo","version":"st-7"}}`
	st := append([]byte{byte(len(header)), 0, 0, 0, 0, 0, 0, 0}, header...)
	must(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), st, 0o644))
	s, err := OpenSlot(dir, 1e-4)
	must(t, err)
	if !s.Bare || s.Version != "st-7" || s.Model != "demo" {
		t.Errorf("from safetensors: bare=%v version=%q model=%q", s.Bare, s.Version, s.Model)
	}
	CloseSlot(s)

	must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"version":"cfg-3"}`), 0o644))
	s, err = OpenSlot(dir, 1e-4)
	must(t, err)
	if s.Version != "cfg-3" {
		t.Errorf("config.json version not preferred: %q", s.Version)
	}
	CloseSlot(s)
}

func TestOpenSlotErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenSlot(dir, 1e-4); err == nil || !strings.Contains(err.Error(), "no version found") {
		t.Errorf("empty dir: %v", err)
	}
	must(t, os.MkdirAll(filepath.Join(dir, ".modelslot"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, ManifestPath), []byte("{"), 0o644))
	if _, err := OpenSlot(dir, 1e-4); err == nil || !strings.Contains(err.Error(), "reinstall the slot") {
		t.Errorf("broken manifest: %v", err)
	}
	if _, err := OpenSlot(filepath.Join(dir, "nope"), 1e-4); err == nil || !strings.Contains(err.Error(), "check that it points") {
		t.Errorf("missing link: %v", err)
	}
}

func TestMatchJSON(t *testing.T) {
	exp := `{"outputs":[[1.0,2.0],[3.0,-4.0]]}`
	cases := []struct {
		got string
		ok  bool
	}{
		{`{"outputs":[[1.00001,2],[3,-4]],"version":"v1"}`, true},
		{`{"outputs":[[1.01,2],[3,-4]]}`, false},
		{`{"outputs":[[1,2],[3]]}`, false},
		{`{"outputs":[[1,2],[3,"-4"]]}`, false},
		{`{"output":[[1,2],[3,-4]]}`, false},
		{`[1]`, false},
		{`not json`, false},
	}
	for _, c := range cases {
		if err := matchJSON([]byte(exp), []byte(c.got), 1e-4); (err == nil) != c.ok {
			t.Errorf("matchJSON(%s) = %v, want ok=%v", c.got, err, c.ok)
		}
	}
}

// Per-field tolerances, as modelslot's probe applies them: the deepest JSON
// pointer at or above a number wins.
func TestMatchJSONTolerances(t *testing.T) {
	exp := []byte(`{"logits":[1,2],"p/q":[0.5]}`)
	got := []byte(`{"logits":[1.0009,2],"p/q":[0.5009]}`)
	for _, c := range []struct {
		tols map[string]float64
		ok   bool
	}{
		{nil, false},
		{map[string]float64{"/logits": 1e-3}, false},
		{map[string]float64{"/logits": 1e-3, "/p~1q": 1e-3}, true},
		{map[string]float64{"": 1e-3}, true},
		{map[string]float64{"": 1e-3, "/logits/0": 1e-5}, false},
	} {
		if err := matchJSONTolerances(exp, got, 1e-4, c.tols); (err == nil) != c.ok {
			t.Errorf("tolerances %v: %v, want ok=%v", c.tols, err, c.ok)
		}
	}
}

func FuzzMatchJSON(f *testing.F) {
	f.Add([]byte(`{"outputs":[[1,2]]}`), []byte(`{"outputs":[[1,2]],"version":"v1"}`))
	f.Add([]byte(`[1,{"a":null}]`), []byte(`[1,{"a":false}]`))
	f.Fuzz(func(t *testing.T, expected, got []byte) {
		err := matchJSON(expected, got, 1e-4)
		if err == nil && matchJSON(expected, expected, 0) != nil {
			t.Fatal("an answer matched an expected output that does not match itself")
		}
	})
}

// A slot whose manifest names probe/tolerances.json is checked with them: an
// answer 0.005 off passes with {"/outputs": 0.01} and fails without.
func TestCheckProbeReadsTheSlotsTolerances(t *testing.T) {
	for tols, ok := range map[string]bool{"": false, `{"/outputs": 0.01}`: true} {
		dir := t.TempDir()
		writeSlot(t, dir, "v1", 1.005, 1)
		if tols != "" {
			must(t, os.WriteFile(filepath.Join(dir, DefaultProbeTolerances), []byte(tols), 0o644))
			raw, err := os.ReadFile(filepath.Join(dir, ManifestPath))
			must(t, err)
			raw = bytes.Replace(raw, []byte(`"tolerance":0.001`), []byte(`"tolerance":0.001,"tolerances":"probe/tolerances.json"`), 1)
			must(t, os.WriteFile(filepath.Join(dir, ManifestPath), raw, 0o644))
		}
		s, err := OpenSlot(dir, 1e-4)
		must(t, err)
		var closed atomic.Int32
		m, err := openAnswer(&closed)(context.Background(), s)
		must(t, err)
		err = checkProbe(context.Background(), m, s)
		CloseSlot(s)
		if (err == nil) != ok {
			t.Errorf("tolerances %q: checkProbe = %v, want ok=%v", tols, err, ok)
		}
	}
}
