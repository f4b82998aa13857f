package main

import (
	"context"
	"fmt"

	"github.com/modelslot/modelslot/internal/device"
)

func runRollback(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("rollback", g)
	ifTrial := fs.Bool("if-trial", false, "only revert a running trial; otherwise do nothing (for OnFailure= units)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := openToEndTrial(ctx, g, "rollback")
	if err != nil {
		return err
	}
	defer t.Close()
	changed, err := t.Updater.Rollback(ctx, *ifTrial)
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "rolled back", "nothing to roll back")
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

// printOutcome says in one line what is active now.
func printOutcome(g *globalOptions, t *device.Model, changed bool, did, nothing string) error {
	st := t.Store.State()
	active := "no version"
	if st.Active != "" {
		active = fmt.Sprintf("%s (slot %s)", st.Slots[st.Active].Version, st.Active)
	}
	if !changed {
		fmt.Fprintf(g.stdout, "%s: %s; active: %s\n", t.Model.Name, nothing, active)
		return nil
	}
	fmt.Fprintf(g.stdout, "%s: %s; active: %s\n", t.Model.Name, did, active)
	return nil
}
