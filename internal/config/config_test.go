package config

import (
	"errors"
	"fmt"
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
		"probe_version":     {probeVersion("restart", "u.service", "version"), "invalid probe_version \"version\""},
		"probe_version ptr": {probeVersion("restart", "u.service", "json:version"), "must start with \"/\""},
		"probe_version hdr": {probeVersion("restart", "u.service", "header:X Version"), "is not a header name"},
		"off with reload":   {probeVersion("reload", "u.service", "off"), "a reload keeps the unit's main process"},
		"off without unit":  {probeVersion("restart", "", "off"), "needs a unit"},
		"negative min_rate": {"[download]\nmin_rate_window = \"-5s\"\n[[model]]\nname = \"a\"\n", "must not be negative"},
		"version, no probe": {"[[model]]\nname = \"a\"\n[model.health]\nprobe_version = \"header:X-V\"\n", "probe_url is empty"},
	}
	for name, tt := range tests {
		_, err := Parse([]byte(tt.conf))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want a config error about %q", name, err, tt.want)
		}
	}
}

func probeVersion(activation, unit, v string) string {
	return fmt.Sprintf("[[model]]\nname = \"a\"\nunit = %q\nactivation = %q\n[model.health]\nprobe_url = \"http://127.0.0.1:9/\"\nprobe_version = %q\n", unit, activation, v)
}

func TestParseProbeVersion(t *testing.T) {
	for v, want := range map[string]string{"off": "off", "json:/meta/version": "json:/meta/version", "header:X-Model-Version": "header:X-Model-Version"} {
		c, err := Parse([]byte(probeVersion("restart", "u.service", v)))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got := c.Models[0].Health.ProbeVersion; got.String() != want || got.Off() != (v == "off") {
			t.Errorf("probe_version %q parsed as %q (off %v)", v, got, got.Off())
		}
	}
	// reload is fine when the answer names the version.
	if _, err := Parse([]byte(probeVersion("reload", "u.service", "header:X-Model-Version"))); err != nil {
		t.Fatalf("reload with a header: %v", err)
	}
	c, err := Parse([]byte("[[model]]\nname = \"a\"\n"))
	if err != nil || !c.Models[0].Health.ProbeVersion.IsDefault() || c.Models[0].Health.ProbeVersion.String() != "json:/version" {
		t.Fatalf("default probe_version: %v %v", c.Models[0].Health.ProbeVersion, err)
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
	if c.Labels["site"] != "berlin" || c.Models[0].Unit == "" || c.Download.Workers != 4 ||
		c.Download.MinRate != 1<<10 || c.Download.MinRateWindow != Duration(time.Minute) || c.Download.RequestTimeout != Duration(30*time.Minute) {
		t.Fatalf("documented settings did not land where documented: %+v", c)
	}
}
