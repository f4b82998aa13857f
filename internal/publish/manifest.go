package publish

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// buildManifest lists dir (verify.Scan: its path and file-type rules, whole-file
// digests, the default probe), chunks every file into the repository's packs,
// and writes the index the manifest pins (format 2, docs/repository.md).
func buildManifest(ctx context.Context, dir string, opts Options) (*verify.Manifest, *stats, error) {
	m, err := verify.Scan(ctx, dir, opts.Model, opts.Version, opts.Workers)
	if err != nil {
		return nil, nil, err
	}
	m.Schema = verify.SchemaIndexed
	m.Insecure = false
	m.Sequence = opts.Sequence
	m.Created = opts.Now().UTC()
	m.Requires = opts.Requires
	cat, err := loadCatalogs(opts.Repo)
	if err != nil {
		return nil, nil, err
	}
	afterCatalogs()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st := newStore(ctx, opts.Repo, opts.Level, opts.Workers, opts.PackSize, cat)
	budget := int64(verify.InlineBudget)
	for i := range m.Files {
		f := &m.Files[i]
		var small []byte
		if small, err = st.addFile(ctx, filepath.Join(dir, filepath.FromSlash(f.Path)), f, opts.Params); err != nil {
			cancel() // stop the workers; close still drains them
			break
		}
		budget = inline(f, small, budget)
	}
	if cerr := st.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	m.Index, err = writeIndex(opts.Repo, st.files, st.packs, st.locs)
	if err != nil {
		return nil, nil, err
	}
	// Each file pins its own section too: a device fetches the sections of
	// the files it lacks, not the whole index (docs/repository.md).
	for i, sec := range chunkindex.Sections(st.files) {
		m.Files[i].Index = &sec
	}
	return m, &st.stats, m.Validate()
}

// inline puts a small file's bytes into its manifest entry (verify.File.Data)
// when they fit in what is left of the manifest's budget, and returns what
// is left then. A file that does not fit is skipped, and a smaller one after
// it may still fit. Its chunks stay in the index and packs all the same, for
// the devices that ignore the field. An empty file needs no data.
func inline(f *verify.File, data []byte, budget int64) int64 {
	if f.Size == 0 || int64(len(data)) != f.Size || f.Size > budget {
		return budget
	}
	f.Data = base64.StdEncoding.EncodeToString(data)
	return budget - f.Size
}

// afterCatalogs runs once publish knows what the repository holds: the
// moment a prune must not remove any of it. A test seam.
var afterCatalogs = func() {}

// manifestPoint is hit once the manifest is durable, before the channel moves.
var manifestPoint = crashpoint.Declare("publish.after-manifest")

// writeSigned stores the signed manifest, then the channel pointer that names
// it by digest. The manifest file is created exclusively: versions are immutable.
func writeSigned(opts Options, m *verify.Manifest) (*Result, error) {
	env, err := verify.SignManifest(m, opts.Key)
	if err != nil {
		return nil, err
	}
	res := &Result{Manifest: m, Envelope: env,
		ManifestFile: filepath.Join(opts.modelDir(), filepath.FromSlash(verify.ManifestPath(m.Version)))}
	if err := os.MkdirAll(filepath.Dir(res.ManifestFile), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(res.ManifestFile); err == nil {
		return nil, fmt.Errorf("version %s is already published (%s); versions are immutable, publish a new one", m.Version, res.ManifestFile)
	}
	if err := durable.WriteFile(res.ManifestFile, env, 0o644); err != nil {
		return nil, err
	}
	manifestPoint.Hit()
	if opts.Channel == "" {
		return res, nil
	}
	res.ChannelFile, err = writeChannel(opts, m, env)
	return res, err
}

func writeChannel(opts Options, m *verify.Manifest, env []byte) (string, error) {
	sum := sha256.Sum256(env)
	c := &verify.Channel{Schema: verify.ChannelSchema, Model: m.Model, Channel: opts.Channel,
		Version: m.Version, Sequence: m.Sequence, Manifest: verify.ManifestPath(m.Version),
		ManifestSHA256: hex.EncodeToString(sum[:]), Created: m.Created}
	signed, err := verify.SignChannel(c, opts.Key)
	if err != nil {
		return "", err
	}
	name := filepath.Join(opts.modelDir(), filepath.FromSlash(verify.ChannelPath(opts.Channel)))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return "", err
	}
	return name, durable.WriteFile(name, signed, 0o644)
}
