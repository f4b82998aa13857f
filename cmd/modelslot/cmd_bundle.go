package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/publish"
)

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
	res, err := publish.CreateBundle(ctx, *out, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s: %s %s (sequence %d), %d chunks\n", *out, res.Manifest.Model, res.Manifest.Version, res.Manifest.Sequence, res.Chunks)
	return nil
}
