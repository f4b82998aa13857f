package main

import (
	"context"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/device"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/verify"
)

type installOptions struct {
	insecure       bool
	version        string
	source         string
	allowDowngrade bool
}

func runInstall(ctx context.Context, g *globalOptions, args []string) error {
	var o installOptions
	fs := newFlagSet("install", g)
	fs.BoolVar(&o.insecure, "insecure", false, "install a plain, unsigned directory (development only)")
	fs.StringVar(&o.version, "version", "", "version label of the directory (with --insecure)")
	fs.BoolVar(&o.allowDowngrade, "allow-downgrade", false, "accept a manifest whose sequence is lower than the active one")
	fs.Usage = func() {
		fmt.Fprintln(g.stderr, "usage: modelslot install [--allow-downgrade] SOURCE")
		fmt.Fprintln(g.stderr, "       SOURCE: a channel or manifest URL, a .mslot bundle, or - (bundle on stdin)")
		fmt.Fprintln(g.stderr, "       modelslot install --insecure --version V DIR")
		fs.PrintDefaults()
		fmt.Fprint(g.stderr, exitCodeHelp)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("install takes one SOURCE, got %d arguments", fs.NArg())
	}
	o.source = fs.Arg(0)
	if !o.insecure {
		return installSource(ctx, g, o)
	}
	if o.version == "" {
		return usageErrorf("--insecure needs --version V: the label this directory is installed as")
	}
	return installDir(ctx, g, o)
}

func installDir(ctx context.Context, g *globalOptions, o installOptions) error {
	if fi, err := os.Stat(o.source); err != nil || !fi.IsDir() {
		return usageErrorf("%s is not a readable directory", o.source)
	}
	t, err := openTarget(ctx, g, "install "+o.version)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := verify.CheckVersion(o.version); err != nil {
		return err
	}
	m, err := verify.Scan(ctx, o.source, t.Model.Name, o.version, verify.Workers())
	if err != nil {
		return fmt.Errorf("install %s from %s: %w", o.version, o.source, err)
	}
	res, err := t.Updater.Install(ctx, m, update.DirSource{Dir: o.source})
	if err != nil {
		return err
	}
	printInstalled(g, m.Model, res)
	return nil
}

// installSource installs from a repository URL, a bundle file or stdin.
func installSource(ctx context.Context, g *globalOptions, o installOptions) error {
	if o.version != "" {
		return usageErrorf("--version goes with --insecure; a signed source names its own version")
	}
	t, err := openTarget(ctx, g, "install "+o.source)
	if err != nil {
		return err
	}
	defer t.Close()
	bar := newProgressBar(g.stderr)
	res, err := t.InstallSource(ctx, o.source, device.InstallOptions{AllowDowngrade: o.allowDowngrade, Stdin: os.Stdin, Progress: bar.update})
	bar.done()
	if err != nil {
		return err
	}
	printInstalled(g, t.Model.Name, res)
	return nil
}

func printInstalled(g *globalOptions, model string, res update.Result) {
	switch res.Outcome {
	case update.AlreadyActive:
		fmt.Fprintf(g.stdout, "%s %s is already active in slot %s; nothing to do\n", model, res.Version, res.Slot)
	case update.Reactivated:
		fmt.Fprintf(g.stdout, "%s %s was already in slot %s and verified; activated it without copying\n", model, res.Version, res.Slot)
	default:
		fmt.Fprintf(g.stdout, "%s %s installed in slot %s and active\n", model, res.Version, res.Slot)
	}
}
