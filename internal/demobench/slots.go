package demobench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/slots"
)

// FillSlot copies the model directory src into the slot dir dst and writes
// the manifest modelslot would leave there, so a server sees a real slot.
// (The tests of the demo server do not depend on modelslot's own install
// code; modelslot's tests cover that.)
func FillSlot(src, dst, version string, sequence uint64) error {
	type file struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		Mode   string `json:"mode"`
		SHA256 string `json:"sha256"`
	}
	var files []file
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o444); err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files = append(files, file{filepath.ToSlash(rel), int64(len(b)), "0444", hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		return fmt.Errorf("fill slot %s from %s: %w", dst, src, err)
	}
	m := map[string]any{"schema": 1, "model": "demo", "version": version, "sequence": sequence,
		"insecure": true, "files": files,
		"probe": map[string]any{"input": "probe/input.json", "expected": "probe/expected.json", "tolerance": 1e-4}}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Join(dst, ".modelslot"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, filepath.FromSlash(slots.ManifestFile)), b, 0o444)
}

// Swap points link at target as modelslot does: a new symlink under a temp
// name renamed over the link.
func Swap(link, target string) error {
	tmp := fmt.Sprintf("%s.swap-%d", link, time.Now().UnixNano())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("swap link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("swap link %s: %w", link, err)
	}
	return nil
}

// Device is a scratch state dir with slot a holding v1, slot b holding v2,
// and the link pointing at a.
type Device struct {
	Link, A, B string
	Expect     Expect
	Input      []byte
}

// NewDevice builds a Device under dir from the model directories models/v1
// and models/v2.
func NewDevice(dir, models string) (*Device, error) {
	d := &Device{Link: filepath.Join(dir, "current"), A: filepath.Join(dir, "slots/a"), B: filepath.Join(dir, "slots/b")}
	v1, v2 := filepath.Join(models, "v1"), filepath.Join(models, "v2")
	if err := FillSlot(v1, d.A, "v1", 1); err != nil {
		return nil, err
	}
	if err := FillSlot(v2, d.B, "v2", 2); err != nil {
		return nil, err
	}
	var err error
	if d.Expect, d.Input, err = ReadExpect(map[string]string{"v1": v1, "v2": v2}); err != nil {
		return nil, err
	}
	return d, Swap(d.Link, d.A)
}
