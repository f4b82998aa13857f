package main

import (
	"github.com/modelslot/modelslot/internal/cli"

	"context"
)

var markGoodCommand = cli.Command{
	Name:    "mark-good",
	Summary: "end a trial by keeping the new version",
	Help: "Commits the version under trial now, without waiting for the rest of its confirmation window: its slot " +
		"becomes good and the previous slot stays the rollback target. With no trial in progress it does nothing (exit 0).",
	Examples: []cli.Example{{Cmd: "mark-good", What: "keep the version under trial"}},
	Run:      runMarkGood,
}

func runMarkGood(ctx context.Context, g *cli.Options, args []string) error {
	if err := cli.ParseFlags(cli.NewFlagSet("mark-good", g), args); err != nil {
		return err
	}
	t, err := openToEndTrial(ctx, g, "mark-good")
	if err != nil {
		return err
	}
	defer t.Close()
	changed, err := t.Updater.MarkGood(ctx)
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "committed", "no trial in progress; nothing to do")
}
