package deptest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list runs `go list` over the whole module: every package with its direct
// imports and all its dependencies (tests excluded: they may reach further).
func list(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps", Module+"/...")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, errb.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func ours(path string) (string, bool) {
	return strings.CutPrefix(path, Module+"/")
}

func TestEveryImportEdgeIsAllowed(t *testing.T) {
	for _, p := range list(t) {
		name, ok := ours(p.ImportPath)
		if !ok {
			continue
		}
		allowed, known := Allowed[name]
		if !known {
			t.Errorf("package %s is not in deptest.Allowed: add it with the packages it may import", name)
			continue
		}
		if slices.Contains(allowed, "*") {
			continue
		}
		for _, imp := range p.Imports {
			if dep, ok := ours(imp); ok && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s, which deptest.Allowed does not allow: fix the import or, if the layering changed on purpose, the table and docs/architecture.md", name, dep)
			}
		}
	}
}

func TestTheDeviceSideNeverReachesThePublishersSide(t *testing.T) {
	for _, p := range list(t) {
		name, _ := ours(p.ImportPath)
		if !slices.Contains(DeviceSide, name) {
			continue
		}
		for _, d := range p.Deps {
			if dep, ok := ours(d); ok && slices.Contains(PublisherSide, dep) {
				t.Errorf("device-side %s depends on publisher-side %s", name, dep)
			}
		}
	}
}

// The table itself must name only packages that exist, so a rename cannot
// leave a stale rule that allows something by accident.
func TestTheTableNamesRealPackages(t *testing.T) {
	var real []string
	for _, p := range list(t) {
		if name, ok := ours(p.ImportPath); ok {
			real = append(real, name)
		}
	}
	for name, allowed := range Allowed {
		if !slices.Contains(real, name) {
			t.Errorf("deptest.Allowed names %s, which is not a package", name)
		}
		for _, a := range allowed {
			if a != "*" && !slices.Contains(real, a) {
				t.Errorf("deptest.Allowed[%s] names %s, which is not a package", name, a)
			}
		}
	}
}
