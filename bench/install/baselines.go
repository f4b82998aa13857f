package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The casync and zsync baselines of the delta table: each file of v2 is
// fetched by the tool from the bench's nginx, seeded with the same file of v1
// (casync: its default 64 KiB average chunks, a blob index per file and a
// chunk store; zsync: a .zsync per file). The tools' index files count as
// traffic, like modelslot's manifests.

// errTimeout marks a tool that did not terminate within the bench's bound.
var errTimeout = errors.New("did not terminate")

// run runs a baseline command bounded by the bench's timeout.
func (b *bench) run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.toolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w within %s", name, errTimeout, b.toolTimeout)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// modelFiles lists the regular files of a model directory, relative to it.
func modelFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, rel)
		return err
	})
	return files, err
}

// baseline is one tool: prepare makes its server-side files for the file
// served at web/rel (not measured); fetch fetches it into out, seeded with seed
// ("" = none; measured).
type baseline struct {
	name, pkg string
	prepare   func(b *bench, web, rel string) error
	fetch     func(b *bench, webURL, web, rel, seed, out string) error
}

var baselines = []baseline{
	{name: "casync", pkg: "casync", prepare: prepareCasync, fetch: fetchCasync},
	{name: "zsync", pkg: "zsync", prepare: prepareZsync, fetch: fetchZsync},
}

func prepareCasync(b *bench, web, rel string) error {
	f := filepath.Join(web, rel)
	return b.run("casync", "make", "--store="+filepath.Join(web, "casync.store"), f+".caibx", f)
}

func fetchCasync(b *bench, webURL, web, rel, seed, out string) error {
	args := []string{"extract", "--store=" + webURL + "/casync.store"}
	if seed != "" {
		args = append(args, "--seed="+seed)
	}
	return b.run("casync", append(args, webURL+"/"+rel+".caibx", out)...)
}

func prepareZsync(b *bench, web, rel string) error {
	f := filepath.Join(web, rel)
	return b.run("zsyncmake", "-u", filepath.Base(rel), "-o", f+".zsync", f)
}

func fetchZsync(b *bench, webURL, web, rel, seed, out string) error {
	args := []string{"-q", "-o", out}
	if seed != "" {
		args = append(args, "-i", seed)
	}
	return b.run("zsync", append(args, webURL+"/"+rel+".zsync")...)
}

// runBaseline updates v1 to v2 with tool t, file by file, and returns what
// nginx served for it. Every fetched file is checked against v2.
func (b *bench) runBaseline(t baseline, caseName, v1, v2 string) (traffic, error) {
	if _, err := exec.LookPath(t.name); err != nil {
		return traffic{}, fmt.Errorf("%s is not installed (apt-get install %s)", t.name, t.pkg)
	}
	files, err := modelFiles(v2)
	if err != nil {
		return traffic{}, err
	}
	rootRel := filepath.Join("baselines", caseName, t.name)
	web := filepath.Join(b.dir, rootRel)
	defer os.RemoveAll(web)
	for _, rel := range files {
		dst := filepath.Join(web, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return traffic{}, err
		}
		if err := os.Link(filepath.Join(v2, rel), dst); err != nil {
			return traffic{}, err
		}
		if err := t.prepare(b, web, rel); err != nil {
			return traffic{}, err
		}
	}
	outDir := filepath.Join(b.dir, "baselines", caseName, t.name+".out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return traffic{}, err
	}
	defer os.RemoveAll(outDir)
	webURL := b.url + "/" + filepath.ToSlash(rootRel)
	return b.web.measure(func() error {
		for i, rel := range files {
			seed := filepath.Join(v1, rel)
			if _, err := os.Stat(seed); err != nil {
				seed = ""
			}
			out := filepath.Join(outDir, fmt.Sprint(i))
			if err := t.fetch(b, webURL, web, rel, seed, out); err != nil {
				return err
			}
			if err := sameContent(out, filepath.Join(v2, rel)); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
		return nil
	})
}

// sameContent checks that got has the bytes of want.
func sameContent(got, want string) error {
	g, err := fileSHA256(got)
	if err != nil {
		return err
	}
	w, err := fileSHA256(want)
	if err != nil {
		return err
	}
	if g != w {
		return fmt.Errorf("%s differs from %s", got, want)
	}
	return nil
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
