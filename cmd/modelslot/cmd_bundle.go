package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/publish"
)

var bundleCommand = cli.Command{
	Name:     "bundle",
	Synopsis: []string{"--key FILE --model NAME --version VERSION -o FILE.mslot MODEL_DIR"},
	Summary:  "the same as one streamable bundle file",
	Help: "Writes one signed .mslot file holding the manifest and every chunk of MODEL_DIR, for devices without a " +
		"repository: copy it over, or stream it (install -). With --repo, the sequence continues that repository's.",
	Examples: []cli.Example{
		{Cmd: "bundle --key keys/publisher.key --model demo --version v2 -o demo-v2.mslot ./model-v2", What: "a bundle of v2"},
	},
	Flags: func(fs *flag.FlagSet) { bundleFlags(fs, &publishFlags{}) },
	Run:   runBundle,
}

func bundleFlags(fs *flag.FlagSet, p *publishFlags) (out, repo *string) {
	p.register(fs, false)
	out = fs.String("o", "", "bundle `FILE` to write (FILE.mslot)")
	repo = fs.String("repo", "", "optional repository `DIR`: reuse its sequence history and chunks")
	return out, repo
}

func runBundle(ctx context.Context, g *cli.Options, args []string) error {
	var p publishFlags
	fs := cli.NewFlagSet("bundle", g)
	out, repo := bundleFlags(fs.FlagSet, &p)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		return cli.UsageErrorf("usage: modelslot bundle --key K --model NAME --version V -o FILE.mslot MODEL_DIR")
	}
	opts, err := p.options(*repo)
	if err != nil {
		return err
	}
	res, err := publish.CreateBundle(ctx, *out, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "wrote %s: %s %s (sequence %d), %d chunks\n", *out, res.Manifest.Model, res.Manifest.Version, res.Manifest.Sequence, res.Chunks)
	return nil
}
