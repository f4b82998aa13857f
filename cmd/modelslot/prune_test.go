package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPruneCommandDryRunThenRemoves: the command as a user runs it, against
// a repository published with the binary.
func TestPruneCommandDryRunThenRemoves(t *testing.T) {
	e := newEnv(t)
	repo, key := t.TempDir(), filepath.Join(t.TempDir(), "publisher")
	e.must(0, "keygen", "--out", key)
	for i, v := range []string{"v1", "v2"} {
		e.must(0, "publish", "--key", key+".key", "--repo", repo, "--model", "demo", "--version", v, makeModel(t, 100+i, 300_000))
	}
	r := e.must(0, "prune", "--repo", repo, "--keep", "1", "--dry-run", "--json")
	var dry struct{ Manifests, Files, Kept []string }
	if err := json.Unmarshal([]byte(r.stdout), &dry); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, r.stdout)
	}
	if !slices.Equal(dry.Manifests, []string{"demo/manifests/v1.json"}) || !slices.Equal(dry.Kept, []string{"demo/manifests/v2.json"}) || len(dry.Files) < 2 {
		t.Fatalf("dry run: %+v; want v1 and its index and locations to go, v2 kept", dry)
	}
	if _, err := os.Stat(filepath.Join(repo, "demo/manifests/v1.json")); err != nil {
		t.Fatalf("a dry run removed v1: %v", err)
	}
	r = e.must(0, "prune", "--repo", repo, "--keep", "1")
	if !strings.Contains(r.stdout, "removed demo/manifests/v1.json") {
		t.Fatalf("prune said:\n%s", r.stdout)
	}
	for _, f := range append(dry.Manifests, dry.Files...) {
		if _, err := os.Stat(filepath.Join(repo, f)); !os.IsNotExist(err) {
			t.Errorf("%s: %v after prune, want it removed", f, err)
		}
	}
	e.must(2, "prune", "--repo", repo, "--keep", "0")
}
