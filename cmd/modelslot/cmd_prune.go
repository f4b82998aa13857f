package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/publish"
)

var pruneCommand = cli.Command{
	Name:     "prune",
	Synopsis: []string{"--repo DIR --keep N [--dry-run]"},
	Summary:  "remove old versions and the data only they use from a repository",
	Help: "Keeps, for each model of DIR, the N manifests with the highest sequence and every manifest a channel points " +
		"to; removes the other manifests, then every index, locations file and pack (with its catalog), and every " +
		"schema-1 chunk, that no kept manifest references, and temp files left by a killed publish. Safe while " +
		"publish runs: publish holds DIR/.modelslot-lock shared, prune takes it exclusive (and waits for it), and " +
		"leaves alone any file changed after it took the lock. A manifest or channel it cannot read stops it before " +
		"it removes anything. docs/repository.md § Prune.",
	Examples: []cli.Example{
		{Cmd: "prune --repo /srv/repo --keep 3 --dry-run", What: "list what keeping the 3 newest versions of each model would remove"},
		{Cmd: "prune --repo /srv/repo --keep 3", What: "remove it"},
	},
	Flags: func(fs *flag.FlagSet) { pruneFlags(fs, &publish.PruneOptions{}, new(bool)) },
	Run:   runPrune,
}

func pruneFlags(fs *flag.FlagSet, o *publish.PruneOptions, asJSON *bool) {
	fs.StringVar(&o.Repo, "repo", "", "repository `DIR`ectory")
	fs.IntVar(&o.Keep, "keep", 0, "`N` newest manifests to keep per model (besides those a channel points to)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	fs.BoolVar(asJSON, "json", false, "print JSON for scripts")
}

func runPrune(ctx context.Context, g *cli.Options, args []string) error {
	var o publish.PruneOptions
	fs := cli.NewFlagSet("prune", g)
	pruneFlags(fs.FlagSet, &o, &g.JSON)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if o.Repo == "" || o.Keep < 1 || fs.NArg() != 0 {
		return cli.UsageErrorf("usage: modelslot prune --repo DIR --keep N [--dry-run] (N at least 1)")
	}
	res, err := publish.Prune(ctx, o)
	if err != nil {
		return err
	}
	if g.JSON {
		return json.NewEncoder(g.Stdout).Encode(res)
	}
	verb := "removed"
	if o.DryRun {
		verb = "would remove"
	}
	for _, m := range res.Manifests {
		fmt.Fprintf(g.Stdout, "%s %s\n", verb, m)
	}
	for _, f := range res.Files {
		fmt.Fprintf(g.Stdout, "%s %s\n", verb, f)
	}
	fmt.Fprintf(g.Stdout, "%s %d manifests and %d files (%s); kept %d manifests\n", verb, len(res.Manifests), len(res.Files),
		humanBytes(res.Bytes), len(res.Kept))
	return nil
}
