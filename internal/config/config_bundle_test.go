package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBundleDirMustBeARealAbsoluteDirectory(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	parse := func(bundleDir string) error {
		_, err := Parse([]byte(fmt.Sprintf("device_id = \"d\"\nstate_root = %q\n[agent]\nbundle_dir = %q\n[[model]]\nname = \"demo\"\n", t.TempDir(), bundleDir)))
		return err
	}
	if err := parse(dir); err != nil {
		t.Fatalf("a real directory: %v", err)
	}
	for _, bad := range []string{"relative/dir", dir + "/", link, file, filepath.Join(dir, "missing")} {
		if err := parse(bad); err == nil || !strings.Contains(err.Error(), "bundle_dir") {
			t.Errorf("bundle_dir %q: err = %v, want a refusal naming bundle_dir", bad, err)
		}
	}
}
