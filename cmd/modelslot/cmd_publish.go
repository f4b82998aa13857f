package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

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
		return publish.Options{}, cli.UsageErrorf("--key, --model and --version are required")
	}
	k, err := verify.ReadPrivateKeyFile(p.key)
	if err != nil {
		return publish.Options{}, err
	}
	return publish.Options{Repo: repo, Model: p.model, Version: p.version, Channel: p.channel,
		Key: k, Sequence: p.sequence}, nil
}

var publishCommand = cli.Command{
	Name:     "publish",
	Synopsis: []string{"--key FILE --repo DIR --model NAME --version VERSION [--channel CHANNEL] MODEL_DIR"},
	Summary:  "chunk, compress and sign a model directory into a repository",
	Help: "Splits every file of MODEL_DIR into content-defined chunks of about 64 KiB (cut at tensor boundaries in " +
		"safetensors and GGUF files), stores the ones DIR does not hold yet zstd-compressed in new packs, writes the " +
		"chunk index and the signed manifest of VERSION (which also carries the bytes of files of at most 4 KiB, up to " +
		"64 KiB in all, so a device installs a changed config without another request) and points CHANNEL at it. " +
		"DIR is served as static files (HTTP " +
		"Range); a device downloads only the chunks it does not have. Devices of modelslot 0.1 cannot read this " +
		"format: upgrade them first. docs/repository.md describes the layout.",
	Examples: []cli.Example{
		{Cmd: "publish --key keys/publisher.key --repo /srv/repo --model demo --version v2 ./model-v2", What: "publish v2 of demo and point the stable channel at it"},
	},
	Flags: func(fs *flag.FlagSet) { publishCmdFlags(fs, &publishFlags{}) },
	Run:   runPublish,
}

func publishCmdFlags(fs *flag.FlagSet, p *publishFlags) *string {
	p.register(fs, true)
	return fs.String("repo", "", "repository `DIR`ectory (served as static files)")
}

func runPublish(ctx context.Context, g *cli.Options, args []string) error {
	var p publishFlags
	fs := cli.NewFlagSet("publish", g)
	repo := publishCmdFlags(fs.FlagSet, &p)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *repo == "" || fs.NArg() != 1 {
		return cli.UsageErrorf("usage: modelslot publish --key K --repo DIR --model NAME --version V [--channel stable] MODEL_DIR")
	}
	opts, err := p.options(*repo)
	if err != nil {
		return err
	}
	res, err := publish.Publish(ctx, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "published %s %s (sequence %d): %d chunks, %d new (%s compressed, in %d new packs)\n",
		res.Manifest.Model, res.Manifest.Version, res.Manifest.Sequence, res.Chunks, res.NewChunks, humanBytes(res.StoredBytes), res.NewPacks)
	if res.ChannelFile != "" {
		fmt.Fprintf(g.Stdout, "channel %s -> %s\n", res.ChannelFile, res.Manifest.Version)
	}
	return nil
}

// flagSet is the part of *flag.FlagSet that flag registration helpers use.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
}
