package main

import (
	"github.com/modelslot/modelslot/internal/cli"

	"context"
)

var markBadCommand = cli.Command{
	Name:    "mark-bad",
	Summary: "end a trial (or leave the active version) by marking it bad",
	Help: "Marks the version under trial (or, with no trial, the active version) bad with reason manual, swaps the " +
		"link back to the previous good slot and restores that version. Run again, it does nothing (exit 0).",
	Examples: []cli.Example{{Cmd: "mark-bad", What: "reject the version under trial and go back"}},
	Run:      runMarkBad,
}

func runMarkBad(ctx context.Context, g *cli.Options, args []string) error {
	if err := cli.ParseFlags(cli.NewFlagSet("mark-bad", g), args); err != nil {
		return err
	}
	t, err := openToEndTrial(ctx, g, "mark-bad")
	if err != nil {
		return err
	}
	defer t.Close()
	changed, err := t.Updater.MarkBad(ctx)
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "marked bad and rolled back", "already rolled back; nothing to do")
}
