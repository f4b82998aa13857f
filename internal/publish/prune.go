package publish

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// PruneOptions say what prune keeps.
type PruneOptions struct {
	Repo   string
	Keep   int  // manifests kept per model, newest (highest sequence) first; at least 1
	DryRun bool // list what would go, remove nothing
}

// PruneResult lists what prune removed (or, in a dry run, would remove), as
// slash-separated paths relative to the repository.
type PruneResult struct {
	Manifests []string `json:"manifests"`
	Files     []string `json:"files"` // indexes, locations, packs and their catalogs, schema-1 chunks, left-over temp files
	Bytes     int64    `json:"bytes"` // their size
	Kept      []string `json:"kept"`  // the manifests kept
}

// Prune removes every manifest of each model beyond the opts.Keep newest,
// never one a channel points to, then every index, locations file, pack
// (with its catalog) and schema-1 chunk that no kept manifest references,
// and temp files left by killed publishes.
//
// It holds the repository lock exclusive (LockName), so no publish runs while
// it decides and removes; and it never removes a file modified after it took
// the lock, for a writer that does not take the lock (modelslot 0.1). A
// manifest or channel it cannot read stops it before it removes anything: it
// would not know what that file needs.
func Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	if opts.Keep < 1 {
		return nil, fmt.Errorf("prune: --keep %d: keep at least the newest manifest of each model", opts.Keep)
	}
	if fi, err := os.Stat(opts.Repo); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("prune: %s is not a repository directory (%v)", opts.Repo, err)
	}
	unlock, err := lockRepo(ctx, opts.Repo, true)
	if err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	defer unlock()
	start := time.Now()
	p := &pruner{repo: opts.Repo, start: start, keep: map[string]bool{}, res: &PruneResult{}}
	if err := p.chooseManifests(opts.Keep); err != nil {
		return nil, fmt.Errorf("prune %s: %w", opts.Repo, err)
	}
	if err := p.references(); err != nil {
		return nil, fmt.Errorf("prune %s: %w", opts.Repo, err)
	}
	if err := p.unreferenced(); err != nil {
		return nil, fmt.Errorf("prune %s: %w", opts.Repo, err)
	}
	if opts.DryRun {
		return p.res, nil
	}
	// Manifests first: once they are gone, nothing points at the files after them.
	for _, rel := range append(slices.Clone(p.res.Manifests), p.res.Files...) {
		if err := os.Remove(filepath.Join(opts.Repo, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return p.res, fmt.Errorf("prune: %w", err)
		}
	}
	slog.Info("pruned", "repo", opts.Repo, "manifests", len(p.res.Manifests), "files", len(p.res.Files), "bytes", p.res.Bytes)
	return p.res, nil
}

type pruner struct {
	repo  string
	start time.Time
	kept  []*verify.Manifest
	keep  map[string]bool // repository-relative paths a kept manifest needs
	res   *PruneResult
}

// reserved are the repository's own top-level directories; every other
// directory is a model's.
var reserved = map[string]bool{"index": true, "packs": true, "chunks": true}

func (p *pruner) chooseManifests(keep int) error {
	entries, err := os.ReadDir(p.repo)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || reserved[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := p.chooseModel(e.Name(), keep); err != nil {
			return err
		}
	}
	return nil
}

type stored struct {
	rel string
	m   *verify.Manifest
}

func (p *pruner) chooseModel(model string, keep int) error {
	pinned, err := p.channelTargets(model)
	if err != nil {
		return err
	}
	dir := filepath.Join(p.repo, model, "manifests")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var all []stored
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || !e.Type().IsRegular() {
			continue
		}
		m, err := readUnverified(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("%w; fix or move it aside: prune cannot tell what it references", err)
		}
		all = append(all, stored{rel: path.Join(model, "manifests", e.Name()), m: m})
	}
	slices.SortFunc(all, func(a, b stored) int { return cmpSeq(b.m.Sequence, a.m.Sequence) })
	for i, s := range all {
		if i < keep || pinned[s.rel] || p.newer(s.rel) {
			p.kept = append(p.kept, s.m)
			p.res.Kept = append(p.res.Kept, s.rel)
			continue
		}
		p.remove(s.rel, &p.res.Manifests)
	}
	return nil
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// channelTargets lists the manifests the model's channels point to.
func (p *pruner) channelTargets(model string) (map[string]bool, error) {
	dir := filepath.Join(p.repo, model, "channels")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || !e.Type().IsRegular() {
			continue
		}
		c, err := readChannel(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("%w; fix or move it aside: prune cannot tell which version it keeps", err)
		}
		out[path.Join(model, verify.ManifestPath(c.Version))] = true
		out[path.Join(model, path.Clean("/" + c.Manifest)[1:])] = true
	}
	return out, nil
}

func readChannel(name string) (*verify.Channel, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	env, err := verify.ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	var c verify.Channel
	if err == nil {
		err = json.Unmarshal(payload, &c)
	}
	if err != nil || env.PayloadType != verify.PayloadChannel || c.Version == "" {
		return nil, fmt.Errorf("%s: not a channel pointer (%v)", name, err)
	}
	return &c, nil
}

// references collects every file a kept manifest needs.
func (p *pruner) references() error {
	for _, m := range p.kept {
		if m.Index == nil {
			for _, c := range m.DistinctChunks() {
				p.keep[verify.ChunkPath(c.SHA256)] = true
			}
			continue
		}
		p.keep[chunkindex.IndexPath(m.Index.SHA256)] = true
		loc := chunkindex.LocationsPath(m.Index.SHA256)
		p.keep[loc] = true
		packs, err := p.packTable(loc, m.Index.Chunks)
		if err != nil {
			return fmt.Errorf("%s %s: %w; prune cannot tell which packs it needs", m.Model, m.Version, err)
		}
		for _, d := range packs {
			p.keep[chunkindex.PackPath(d)] = true
			p.keep[catalogPath(d)] = true
		}
	}
	return nil
}

func (p *pruner) packTable(loc string, chunks int64) ([]chunkindex.Digest, error) {
	f, err := os.Open(filepath.Join(p.repo, filepath.FromSlash(loc)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lr, err := chunkindex.NewLocReader(f, chunks)
	if err != nil {
		return nil, err
	}
	return lr.Packs, nil
}

// unreferenced lists the files of index/, packs/ and chunks/ that are the
// repository's own (named as publish names them, or its temp files) and that
// no kept manifest needs. Anything else there is left alone.
func (p *pruner) unreferenced() error {
	for _, top := range []string{"index", "packs", "chunks"} {
		err := filepath.WalkDir(filepath.Join(p.repo, top), func(name string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(p.repo, name)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if !p.keep[rel] && ours(d.Name()) {
				p.remove(rel, &p.res.Files)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ours says whether a file name is one publish writes: <sha256>.<ext> or a temp file.
func ours(name string) bool {
	if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
		return true
	}
	base, ext, ok := strings.Cut(name, ".")
	return ok && verify.CheckDigest(base) == nil && slices.Contains([]string{"idx", "loc", "pack", "cat", "zst"}, ext)
}

// newer says whether a file changed after prune took the lock: a writer
// that does not take the lock is at work; its files are left alone.
func (p *pruner) newer(rel string) bool {
	fi, err := os.Lstat(filepath.Join(p.repo, filepath.FromSlash(rel)))
	return err != nil || !fi.ModTime().Before(p.start)
}

func (p *pruner) remove(rel string, list *[]string) {
	fi, err := os.Lstat(filepath.Join(p.repo, filepath.FromSlash(rel)))
	if err != nil || !fi.ModTime().Before(p.start) {
		return
	}
	*list = append(*list, rel)
	p.res.Bytes += fi.Size()
}
