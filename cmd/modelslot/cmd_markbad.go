package main

import (
	"context"
)

var markBadCommand = command{
	name:    "mark-bad",
	summary: "end a trial (or leave the active version) by marking it bad",
	help: "Marks the version under trial (or, with no trial, the active version) bad with reason manual, swaps the " +
		"link back to the previous good slot and restores that version. Run again, it does nothing (exit 0).",
	examples: []example{{"mark-bad", "reject the version under trial and go back"}},
	run:      runMarkBad,
}

func runMarkBad(ctx context.Context, g *globalOptions, args []string) error {
	if err := parseFlags(newFlagSet("mark-bad", g), args); err != nil {
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
