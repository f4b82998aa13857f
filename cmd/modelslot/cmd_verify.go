package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

var verifyCommand = cli.Command{
	Name:     "verify",
	Synopsis: []string{"[--slot a|b] [--json]"},
	Summary:  "re-hash a slot's files against its manifest",
	Help: "Reads every file of a slot (the active one unless --slot names the other) and checks its size and sha256 " +
		"against the manifest the slot was verified against when it was installed. A mismatch exits 3 and names the file; " +
		"nothing is changed either way.",
	Examples: []cli.Example{
		{Cmd: "verify", What: "re-hash the serving slot"},
		{Cmd: "verify --slot b --json", What: "the other slot, as JSON"},
	},
	Flags: func(fs *flag.FlagSet) { verifyFlags(fs, &cli.Options{}) },
	Run:   runVerify,
}

func verifyFlags(fs *flag.FlagSet, g *cli.Options) *string {
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
	return fs.String("slot", "", "`SLOT` to verify: a or b (default: the active slot)")
}

func runVerify(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("verify", g)
	slot := verifyFlags(fs.FlagSet, g)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	// The store alone: verify reads files and needs no service manager (it
	// works with the bus down), and resumes no trial.
	cfg, mc, err := loadModel(g)
	if err != nil {
		return err
	}
	store, err := slots.Open(ctx, session.StoreConfig(cfg, mc), "verify")
	if err != nil {
		return err
	}
	defer store.Close()
	name := *slot
	if name == "" {
		name = store.State().Active
	}
	if name != slots.A && name != slots.B {
		return cli.UsageErrorf("nothing to verify: no slot is active; name one with --slot a|b")
	}
	start := time.Now()
	m, err := store.VerifySlot(ctx, name, verify.Workers())
	if err != nil {
		return err
	}
	took := time.Since(start)
	if g.JSON {
		return json.NewEncoder(g.Stdout).Encode(map[string]any{
			"slot": name, "version": m.Version, "files": len(m.Files), "bytes": m.TotalSize(), "ok": true, "seconds": took.Seconds()})
	}
	fmt.Fprintf(g.Stdout, "slot %s (%s %s): %d files, %s verified in %s\n",
		name, m.Model, m.Version, len(m.Files), humanBytes(m.TotalSize()), took.Round(time.Millisecond))
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
