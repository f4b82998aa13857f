package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/verify"
)

var installCommand = cli.Command{
	Name:     "install",
	Synopsis: []string{"[--allow-downgrade] SOURCE", "--insecure --label VERSION DIR"},
	Summary:  "install a signed model (URL, .mslot bundle, - for stdin) or a development directory, and activate it",
	Help: "SOURCE is a channel or manifest URL of a repository, a .mslot bundle file, or - for a bundle on stdin. " +
		"modelslot checks the signature against trusted_keys and the manifest's policy, downloads only the chunks the " +
		"device lacks (resumable: run it again after a failure), writes and verifies them into the slot that is not " +
		"serving, swaps the link, restarts or reloads the unit and confirms the new version's health; a failure reverts " +
		"to the previous version (exit 4). The same version already active changes nothing (exit 0).\n\n" +
		"--insecure --label VERSION DIR installs a plain, unsigned directory under the version label VERSION, " +
		"for development.",
	Examples: []cli.Example{
		{Cmd: "install https://models.example/repo/demo/channels/stable.json", What: "what the stable channel names now"},
		{Cmd: "install demo-v2.mslot", What: "a bundle copied to the device"},
		{Cmd: "install - < demo-v2.mslot", What: "a bundle streamed on stdin"},
		{Cmd: "install --insecure --label v2-dev ./model", What: "a development directory, as version v2-dev"},
	},
	Flags: func(fs *flag.FlagSet) { installFlags(fs, &installOptions{}, io.Discard) },
	Run:   runInstall,
}

type installOptions struct {
	insecure       bool
	label          string
	source         string
	allowDowngrade bool
}

// installFlags registers install's flags. --version is the old name of
// --label, kept so that existing scripts go on working; it warns on warn.
func installFlags(fs *flag.FlagSet, o *installOptions, warn io.Writer) {
	fs.BoolVar(&o.insecure, "insecure", false, "install a plain, unsigned directory (development only)")
	fs.StringVar(&o.label, "label", "", "`VERSION` label the directory is installed as (with --insecure)")
	fs.BoolVar(&o.allowDowngrade, "allow-downgrade", false, "accept a manifest whose sequence is lower than the active one")
	fs.Func("version", cli.DeprecatedPrefix+"the old name of --label `VERSION`", func(v string) error {
		fmt.Fprintln(warn, "modelslot: install --version is deprecated (a later release removes it): use --label "+v)
		o.label = v
		return nil
	})
}

func runInstall(ctx context.Context, g *cli.Options, args []string) error {
	var o installOptions
	fs := cli.NewFlagSet("install", g)
	installFlags(fs.FlagSet, &o, g.Stderr)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageErrorf("install takes one SOURCE, got %d arguments; run 'modelslot install --help'", fs.NArg())
	}
	o.source = fs.Arg(0)
	if !o.insecure {
		return installSource(ctx, g, o)
	}
	if o.label == "" {
		return cli.UsageErrorf("--insecure needs --label VERSION: the version label this directory is installed as")
	}
	return installDir(ctx, g, o)
}

func installDir(ctx context.Context, g *cli.Options, o installOptions) error {
	if fi, err := os.Stat(o.source); err != nil || !fi.IsDir() {
		return cli.UsageErrorf("%s is not a readable directory", o.source)
	}
	t, err := openTarget(ctx, g, "install "+o.label)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := verify.CheckVersion(o.label); err != nil {
		return err
	}
	m, err := verify.Scan(ctx, o.source, t.Model.Name, o.label, verify.Workers())
	if err != nil {
		return fmt.Errorf("install %s from %s: %w", o.label, o.source, err)
	}
	res, err := t.Updater.Install(ctx, m, update.DirSource{Dir: o.source})
	if err != nil {
		return err
	}
	printInstalled(g, m.Model, res)
	return nil
}

// installSource installs from a repository URL, a bundle file or stdin.
func installSource(ctx context.Context, g *cli.Options, o installOptions) error {
	if o.label != "" {
		return cli.UsageErrorf("--label goes with --insecure; a signed source names its own version")
	}
	t, err := openTarget(ctx, g, "install "+o.source)
	if err != nil {
		return err
	}
	defer t.Close()
	bar := newProgressBar(g.Stderr)
	res, err := t.InstallSource(ctx, o.source, session.InstallOptions{AllowDowngrade: o.allowDowngrade, Stdin: os.Stdin, Progress: bar.update})
	bar.done()
	if err != nil {
		return err
	}
	printInstalled(g, t.Model.Name, res)
	return nil
}

func printInstalled(g *cli.Options, model string, res update.Result) {
	switch res.Outcome {
	case update.AlreadyActive:
		fmt.Fprintf(g.Stdout, "%s %s is already active in slot %s; nothing to do\n", model, res.Version, res.Slot)
	case update.Reactivated:
		fmt.Fprintf(g.Stdout, "%s %s was already in slot %s and verified; activated it without copying\n", model, res.Version, res.Slot)
	default:
		fmt.Fprintf(g.Stdout, "%s %s installed in slot %s and active\n", model, res.Version, res.Slot)
	}
}
