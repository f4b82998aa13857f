// Package publish turns a model directory into a signed repository of format 2
// (docs/repository.md): content-defined chunks (with forced cuts at tensor
// boundaries of the formats it knows) compressed with zstd into content-addressed
// packs, a binary chunk index and its locations, a schema-2 manifest in a signed
// DSSE envelope that pins the index, and a signed channel pointer; .mslot bundles
// of a published version; and prune, which removes what no kept version needs.
//
// Invariants: everything is written temp → fsync → rename, and in the order a
// reader needs it — packs, then the locations and the index, then the manifest,
// then the channel pointer — so a device that follows a channel never finds
// something missing, even if publish was killed half-way. A stored chunk is
// reused only after its bytes were compared with the ones being published. A
// published version is never rewritten, and each manifest of a model gets a
// sequence higher than every one before it. Publish holds the repository lock
// shared, prune exclusive.
package publish

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

// Options say what to publish and where.
type Options struct {
	Repo     string             // repository root directory
	Model    string             // model name
	Version  string             // version label; must not be published yet
	Channel  string             // channel to point at the new version; "" = none
	Key      *verify.PrivateKey // signing key
	Sequence uint64             // 0 = highest published + 1
	Requires *verify.Requires   // device constraints to sign into the manifest
	Params   chunker.Params     // zero = chunker.Default
	Level    zstd.EncoderLevel  // zero = zstd.SpeedDefault (level 3)
	Workers  int                // compression goroutines; 0 = verify.Workers()
	PackSize int64              // where a pack is closed; 0 = DefaultPackSize
	Now      func() time.Time   // nil = time.Now
}

// Result says what Publish did.
type Result struct {
	Manifest     *verify.Manifest
	Envelope     []byte // the signed manifest as stored
	ManifestFile string // absolute path of the stored envelope
	ChannelFile  string // "" when no channel was given
	Chunks       int    // distinct chunks of the version
	NewChunks    int    // chunks written now (the others were in the repository)
	StoredBytes  int64  // compressed bytes written now, into packs
	NewBytes     int64  // the uncompressed bytes of the new chunks
	NewPacks     int    // packs written now
}

// Publish chunks, compresses, signs and stores the model directory dir.
func Publish(ctx context.Context, dir string, opts Options) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	unlock, err := lockRepo(ctx, opts.Repo, false)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Model, opts.Version, err)
	}
	defer unlock()
	unlockModel, err := lockModel(ctx, opts.Repo, opts.Model)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Model, opts.Version, err)
	}
	defer unlockModel()
	seq, err := nextSequence(opts.Repo, opts.Model, opts.Version)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Model, opts.Version, err)
	}
	if opts.Sequence != 0 && opts.Sequence < seq {
		return nil, fmt.Errorf("publish %s %s: sequence %d is not above the %d already published; leave it out to use %d",
			opts.Model, opts.Version, opts.Sequence, seq-1, seq)
	}
	if opts.Sequence == 0 {
		opts.Sequence = seq
	}
	m, st, err := buildManifest(ctx, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Model, opts.Version, err)
	}
	res, err := writeSigned(opts, m)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", opts.Model, opts.Version, err)
	}
	res.Chunks, res.NewChunks, res.StoredBytes = st.chunks, st.written, st.writtenBytes
	res.NewBytes, res.NewPacks = st.newBytes, st.newPacks
	slog.Info("published", "model", m.Model, "version", m.Version, "sequence", m.Sequence, "index", m.Index.SHA256,
		"chunks", res.Chunks, "new_chunks", res.NewChunks, "stored_bytes", res.StoredBytes, "new_packs", res.NewPacks)
	return res, nil
}

func (o *Options) check() error {
	if err := verify.CheckModelName(o.Model); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := verify.CheckVersion(o.Version); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if o.Channel != "" {
		if err := verify.CheckModelName(o.Channel); err != nil {
			return fmt.Errorf("publish: channel name: %w", err)
		}
	}
	if o.Key == nil {
		return fmt.Errorf("publish: no signing key; make one with `modelslot keygen`")
	}
	if o.Repo == "" {
		return fmt.Errorf("publish: no repository directory given")
	}
	if o.Params == (chunker.Params{}) {
		o.Params = chunker.Default
	}
	if o.Level == 0 {
		// Publishing happens once and devices pay for every byte: the "better"
		// level (about zstd 7) takes float32 weights to ~0.93 of their size,
		// where klauspost's default level stores them as they are.
		o.Level = zstd.SpeedBetterCompression
	}
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Workers < 1 {
		o.Workers = verify.Workers()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// modelDir is <repo>/<model>.
func (o *Options) modelDir() string { return filepath.Join(o.Repo, o.Model) }
