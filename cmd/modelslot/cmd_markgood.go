package main

import (
	"context"
)

var markGoodCommand = command{
	name:    "mark-good",
	summary: "end a trial by keeping the new version",
	help: "Commits the version under trial now, without waiting for the rest of its confirmation window: its slot " +
		"becomes good and the previous slot stays the rollback target. With no trial in progress it does nothing (exit 0).",
	examples: []example{{"mark-good", "keep the version under trial"}},
	run:      runMarkGood,
}

func runMarkGood(ctx context.Context, g *globalOptions, args []string) error {
	if err := parseFlags(newFlagSet("mark-good", g), args); err != nil {
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
