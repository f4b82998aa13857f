package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

var keygenCommand = command{
	name:     "keygen",
	synopsis: []string{"--out PREFIX"},
	summary:  "make an ed25519 key pair for publishing",
	help: "Writes PREFIX.key, the private key (mode 0600: keep it off the devices), and PREFIX.pub, which devices list " +
		"in trusted_keys. docs/keys.md says how to rotate keys.",
	examples: []example{{"keygen --out keys/publisher", "writes keys/publisher.key and keys/publisher.pub"}},
	flags:    func(fs *flag.FlagSet) { keygenFlags(fs) },
	run:      runKeygen,
}

func keygenFlags(fs *flag.FlagSet) *string {
	return fs.String("out", "", "`PREFIX`: writes PREFIX.key (private, 0600) and PREFIX.pub")
}

func runKeygen(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("keygen", g)
	out := keygenFlags(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usageErrorf("usage: modelslot keygen --out PREFIX")
	}
	k, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := verify.WriteKeyPair(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s.key (keep it secret) and %s.pub (key id %s); devices trust it via trusted_keys\n", *out, *out, k.ID)
	return nil
}

// publishFlags are the flags publish and bundle share.
type publishFlags struct {
	key, model, version, channel string
	sequence                     uint64
}

func (p *publishFlags) register(fs flagSet, withChannel bool) {
	fs.StringVar(&p.key, "key", "", "private key `FILE` (from keygen)")
	fs.StringVar(&p.model, "model", "", "`NAME` of the model")
	fs.StringVar(&p.version, "version", "", "`VERSION` label of what is published")
	fs.Uint64Var(&p.sequence, "sequence", 0, "sequence `NUMBER` (default: one above the highest published)")
	if withChannel {
		fs.StringVar(&p.channel, "channel", "stable", "`CHANNEL` to point at the new version (\"\" for none)")
	}
}

func (p *publishFlags) options(repo string) (publish.Options, error) {
	if p.key == "" || p.model == "" || p.version == "" {
		return publish.Options{}, usageErrorf("--key, --model and --version are required")
	}
	k, err := verify.ReadPrivateKeyFile(p.key)
	if err != nil {
		return publish.Options{}, err
	}
	return publish.Options{Repo: repo, Model: p.model, Version: p.version, Channel: p.channel,
		Key: k, Sequence: p.sequence}, nil
}

var publishCommand = command{
	name:     "publish",
	synopsis: []string{"--key FILE --repo DIR --model NAME --version VERSION [--channel CHANNEL] MODEL_DIR"},
	summary:  "chunk, compress and sign a model directory into a repository",
	help: "Splits every file of MODEL_DIR into content-defined chunks, stores the new ones zstd-compressed under " +
		"DIR, writes the signed manifest of VERSION and points CHANNEL at it. DIR is served as static files; a device " +
		"downloads only the chunks it does not have. docs/repository.md describes the layout.",
	examples: []example{
		{"publish --key keys/publisher.key --repo /srv/repo --model demo --version v2 ./model-v2",
			"publish v2 of demo and point the stable channel at it"},
	},
	flags: func(fs *flag.FlagSet) { publishCmdFlags(fs, &publishFlags{}) },
	run:   runPublish,
}

func publishCmdFlags(fs *flag.FlagSet, p *publishFlags) *string {
	p.register(fs, true)
	return fs.String("repo", "", "repository `DIR`ectory (served as static files)")
}

func runPublish(ctx context.Context, g *globalOptions, args []string) error {
	var p publishFlags
	fs := newFlagSet("publish", g)
	repo := publishCmdFlags(fs.FlagSet, &p)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" || fs.NArg() != 1 {
		return usageErrorf("usage: modelslot publish --key K --repo DIR --model NAME --version V [--channel stable] MODEL_DIR")
	}
	opts, err := p.options(*repo)
	if err != nil {
		return err
	}
	res, err := publish.Publish(ctx, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "published %s %s (sequence %d): %d chunks, %d new (%s compressed)\n",
		res.Manifest.Model, res.Manifest.Version, res.Manifest.Sequence, res.Chunks, res.NewChunks, humanBytes(res.StoredBytes))
	if res.ChannelFile != "" {
		fmt.Fprintf(g.stdout, "channel %s -> %s\n", res.ChannelFile, res.Manifest.Version)
	}
	return nil
}

var bundleCommand = command{
	name:     "bundle",
	synopsis: []string{"--key FILE --model NAME --version VERSION -o FILE.mslot MODEL_DIR"},
	summary:  "the same as one streamable bundle file",
	help: "Writes one signed .mslot file holding the manifest and every chunk of MODEL_DIR, for devices without a " +
		"repository: copy it over, or stream it (install -). With --repo, the sequence continues that repository's.",
	examples: []example{
		{"bundle --key keys/publisher.key --model demo --version v2 -o demo-v2.mslot ./model-v2", "a bundle of v2"},
	},
	flags: func(fs *flag.FlagSet) { bundleFlags(fs, &publishFlags{}) },
	run:   runBundle,
}

func bundleFlags(fs *flag.FlagSet, p *publishFlags) (out, repo *string) {
	p.register(fs, false)
	out = fs.String("o", "", "bundle `FILE` to write (FILE.mslot)")
	repo = fs.String("repo", "", "optional repository `DIR`: reuse its sequence history and chunks")
	return out, repo
}

func runBundle(ctx context.Context, g *globalOptions, args []string) error {
	var p publishFlags
	fs := newFlagSet("bundle", g)
	out, repo := bundleFlags(fs.FlagSet, &p)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		return usageErrorf("usage: modelslot bundle --key K --model NAME --version V -o FILE.mslot MODEL_DIR")
	}
	opts, err := p.options(*repo)
	if err != nil {
		return err
	}
	res, err := bundle.Create(ctx, *out, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s: %s %s (sequence %d), %d chunks\n", *out, res.Manifest.Model, res.Manifest.Version, res.Manifest.Sequence, res.Chunks)
	return nil
}
