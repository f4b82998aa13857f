package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFillsDefaults(t *testing.T) {
	c, err := Parse([]byte(`
device_id = "edge-001"
[[model]]
name = "demo"
  [model.health]
  start_timeout = "60s"
  max_memory = "2GiB"
  checks = ["true"]
`))
	if err != nil {
		t.Fatal(err)
	}
	m := &c.Models[0]
	if c.StateRoot != DefaultStateRoot || c.Systemd.Scope != "system" || m.Activation != "restart" ||
		m.Link != "/var/lib/modelslot/demo/current" || m.Health.MaxAttempts != 3 {
		t.Fatalf("defaults not filled: %+v %+v", c, m)
	}
	if time.Duration(m.Health.StartTimeout) != time.Minute || m.Health.MaxMemory != 2<<30 {
		t.Fatalf("units: %v %v", m.Health.StartTimeout, m.Health.MaxMemory)
	}
	if got, err := c.Model(""); err != nil || got.Name != "demo" {
		t.Fatalf("Model(\"\") with one model = %v, %v", got, err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := map[string]struct{ conf, want string }{
		"unknown key":       {"[[model]]\nname = \"demo\"\nlnk = \"/x\"\n", "unknown setting model.lnk"},
		"no model":          {"device_id = \"x\"\n", "no [[model]]"},
		"bad name":          {"[[model]]\nname = \"Demo Model\"\n", "model name"},
		"duplicate model":   {"[[model]]\nname = \"a\"\n[[model]]\nname = \"a\"\n", "configured twice"},
		"relative link":     {"[[model]]\nname = \"a\"\nlink = \"srv/a\"\n", "absolute"},
		"bad activation":    {"[[model]]\nname = \"a\"\nactivation = \"kick\"\n", "activation"},
		"bad scope":         {"[systemd]\nscope = \"session\"\n[[model]]\nname = \"a\"\n", "scope"},
		"bad duration":      {"[[model]]\nname = \"a\"\n[model.health]\nstart_timeout = \"soon\"\n", "duration"},
		"bad size":          {"[[model]]\nname = \"a\"\n[model.health]\nmax_memory = \"lots\"\n", "size"},
		"relative root":     {"state_root = \"var\"\n[[model]]\nname = \"a\"\n", "absolute"},
		"not toml":          {"[[model]\n", "configuration error"},
		"negative attempts": {"[[model]]\nname = \"a\"\n[model.health]\nmax_attempts = -1\n", "max_attempts"},
	}
	for name, tt := range tests {
		_, err := Parse([]byte(tt.conf))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want a config error about %q", name, err, tt.want)
		}
	}
}

func TestModelChoice(t *testing.T) {
	c, err := Parse([]byte("[[model]]\nname = \"a\"\n[[model]]\nname = \"b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Model(""); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("Model(\"\") with two models = %v", err)
	}
	if m, err := c.Model("b"); err != nil || m.Name != "b" {
		t.Fatalf("Model(b) = %v, %v", m, err)
	}
}

func TestLoadMissingFileSaysWhatToDo(t *testing.T) {
	_, err := Load("/nonexistent/modelslot.toml")
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("Load = %v", err)
	}
}

// TestDocumentedConfigParses keeps docs/config.md true: its example must be a
// config this build accepts.
func TestDocumentedConfigParses(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/config.md has no ```toml block")
	}
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatalf("the documented config does not parse: %v", err)
	}
	if c.Labels["site"] != "berlin" || c.Models[0].Unit == "" || c.Download.Workers != 4 {
		t.Fatalf("documented settings did not land where documented: %+v", c)
	}
}
