package main

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

func runKeygen(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("keygen", g)
	out := fs.String("out", "", "PREFIX: writes PREFIX.key (private, 0600) and PREFIX.pub")
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
	fs.StringVar(&p.key, "key", "", "private key file (from keygen)")
	fs.StringVar(&p.model, "model", "", "model name")
	fs.StringVar(&p.version, "version", "", "version label")
	fs.Uint64Var(&p.sequence, "sequence", 0, "sequence number (default: one above the highest published)")
	if withChannel {
		fs.StringVar(&p.channel, "channel", "stable", "channel to point at the new version (\"\" for none)")
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

func runPublish(ctx context.Context, g *globalOptions, args []string) error {
	var p publishFlags
	fs := newFlagSet("publish", g)
	p.register(fs, true)
	repo := fs.String("repo", "", "repository directory (served as static files)")
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

func runBundle(ctx context.Context, g *globalOptions, args []string) error {
	var p publishFlags
	fs := newFlagSet("bundle", g)
	p.register(fs, false)
	out := fs.String("o", "", "bundle file to write (FILE.mslot)")
	repo := fs.String("repo", "", "optional repository: reuse its sequence history and chunks")
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
