package main

import (
	"context"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/verify"
)

type installOptions struct {
	insecure bool
	version  string
	source   string
}

func runInstall(ctx context.Context, g *globalOptions, args []string) error {
	var o installOptions
	fs := newFlagSet("install", g)
	fs.BoolVar(&o.insecure, "insecure", false, "install a plain, unsigned directory (development only)")
	fs.StringVar(&o.version, "version", "", "version label of the directory (with --insecure)")
	fs.Usage = func() {
		fmt.Fprintln(g.stderr, "usage: modelslot install --insecure --version V DIR")
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
		return usageErrorf("installing from a repository or bundle is not supported by this build yet; use --insecure --version V DIR for a directory")
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
	switch res.Outcome {
	case update.AlreadyActive:
		fmt.Fprintf(g.stdout, "%s %s is already active in slot %s; nothing to do\n", m.Model, res.Version, res.Slot)
	case update.Reactivated:
		fmt.Fprintf(g.stdout, "%s %s was already in slot %s and verified; activated it without copying\n", m.Model, res.Version, res.Slot)
	default:
		fmt.Fprintf(g.stdout, "%s %s installed in slot %s and active\n", m.Model, res.Version, res.Slot)
	}
	return nil
}
