package loader

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// maxMetadata bounds the JSON read for a version: manifests, configs and
// safetensors headers are small, a damaged file must not exhaust memory.
const maxMetadata = 16 << 20

// manifest holds the fields of modelslot's manifest a server needs (the
// authoritative type is modelslot's verify.Manifest; unknown fields are ignored
// as there).
type manifest struct {
	Schema   int    `json:"schema"`
	Model    string `json:"model"`
	Version  string `json:"version"`
	Sequence uint64 `json:"sequence"`
	Probe    *struct {
		Input      string  `json:"input"`
		Expected   string  `json:"expected"`
		Tolerance  float64 `json:"tolerance"`
		Tolerances string  `json:"tolerances"`
	} `json:"probe"`
}

func parseManifest(raw []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w; reinstall the slot", ManifestPath, err)
	}
	if m.Schema < 1 || m.Version == "" {
		return nil, fmt.Errorf("%s has no schema or no version; reinstall the slot", ManifestPath)
	}
	return &m, nil
}

// bareVersion finds the version of a model directory modelslot did not
// install: "version" in config.json, else "version" in the __metadata__ of the
// first safetensors file (by name) that has one.
func bareVersion(root *os.Root) (model, version string, err error) {
	if b, err := root.ReadFile("config.json"); err == nil {
		var c struct{ Model, Version string }
		if json.Unmarshal(b, &c) == nil && c.Version != "" {
			return c.Model, c.Version, nil
		}
	}
	names, err := safetensorsFiles(root)
	if err != nil {
		return "", "", err
	}
	for _, name := range names {
		meta, err := safetensorsMetadata(root, name)
		if err == nil && meta["version"] != "" {
			return meta["model"], meta["version"], nil
		}
	}
	return "", "", fmt.Errorf("no version found: give the directory a %s, a \"version\" in config.json, or a version in its safetensors __metadata__", ManifestPath)
}

func safetensorsFiles(root *os.Root) ([]string, error) {
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	all, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list model directory: %w", err)
	}
	var names []string
	for _, n := range all {
		if path.Ext(n) == ".safetensors" && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// safetensorsMetadata reads only the header of a safetensors file: an 8-byte
// little-endian length, then a JSON object whose __metadata__ maps strings to
// strings.
func safetensorsMetadata(root *os.Root, name string) (map[string]string, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: read header length: %w", name, err)
	}
	if n > maxMetadata {
		return nil, fmt.Errorf("%s: header of %d bytes is too large", name, n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, fmt.Errorf("%s: read header: %w", name, err)
	}
	var h struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return nil, fmt.Errorf("%s: header is not JSON: %w", name, err)
	}
	return h.Metadata, nil
}
