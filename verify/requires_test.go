package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestRequiresCheck(t *testing.T) {
	r := &Requires{Arch: []string{"arm64", "amd64"}, MinRuntime: "2.1", Labels: map[string]string{"npu": "rk3588"}}
	dev := Device{Arch: "arm64", Runtime: "2.10.0", Labels: map[string]string{"npu": "rk3588", "site": "x"}}
	if err := r.Check(dev); err != nil {
		t.Fatalf("compatible device refused: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Device)
		want   string
	}{
		{"arch", func(d *Device) { d.Arch = "arm" }, "architecture arm"},
		{"old runtime", func(d *Device) { d.Runtime = "2.0.9" }, "runtime 2.0.9 is older than 2.1"},
		{"unknown runtime", func(d *Device) { d.Runtime = "" }, "runtime unknown"},
		{"missing label", func(d *Device) { d.Labels = nil }, `label npu="rk3588"`},
	}
	for _, tt := range tests {
		d := dev
		tt.change(&d)
		if err := r.Check(d); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Check = %v, want %q", tt.name, err, tt.want)
		}
	}
	var none *Requires
	if err := none.Check(Device{}); err != nil {
		t.Fatalf("no constraints must accept any device: %v", err)
	}
}

func TestManifestRejectsBadRequiresAndHugeChunks(t *testing.T) {
	m := validManifest()
	m.Requires = &Requires{MinRuntime: "latest"}
	if err := m.Validate(); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "min_runtime") {
		t.Fatalf("Validate = %v", err)
	}
	m = validManifest()
	m.Files[0].Size = MaxChunkSize + 1
	m.Files[0].Chunks = []Chunk{{SHA256: digestA, Size: MaxChunkSize + 1, CSize: 10}}
	if err := m.Validate(); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "a chunk may hold") {
		t.Fatalf("Validate = %v", err)
	}
}
