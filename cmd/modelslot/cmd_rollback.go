package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/device"
	"github.com/modelslot/modelslot/internal/update"
)

var rollbackCommand = command{
	name:     "rollback",
	synopsis: []string{"[--if-trial]"},
	summary:  "go back to the previous good version now",
	help: "Swaps the link back to the previous good slot and restarts (or reloads) the unit on it. During a trial the " +
		"new version is reverted and marked bad; after a commit the version left is marked bad (reason manual), so a " +
		"second rollback changes nothing instead of swinging back. With one version only, there is nothing to go back to " +
		"(exit 1).\n\n" +
		"--if-trial reverts only a running trial and otherwise does nothing: it is what modelslot-rollback@.service runs " +
		"when systemd gives up on an inference unit (OnFailure=), with the reason systemd saw.",
	examples: []example{
		{"rollback", "back to the previous good version"},
		{"--model demo rollback --if-trial", "as the OnFailure= unit runs it"},
	},
	flags: func(fs *flag.FlagSet) { rollbackFlags(fs) },
	run:   runRollback,
}

func rollbackFlags(fs *flag.FlagSet) *bool {
	return fs.Bool("if-trial", false, "only revert a running trial; otherwise do nothing (for OnFailure= units)")
}

func runRollback(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("rollback", g)
	ifTrial := rollbackFlags(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := openToEndTrial(ctx, g, "rollback")
	if err != nil {
		return err
	}
	defer t.Close()
	changed, err := t.Updater.RollbackFor(ctx, *ifTrial, onFailureReason())
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "rolled back", "nothing to roll back")
}

// onFailureReason names why a trial is reverted: what systemd saw when it
// started this command through OnFailure= (MONITOR_SERVICE_RESULT), or a
// person's request.
func onFailureReason() string {
	result := os.Getenv("MONITOR_SERVICE_RESULT")
	switch {
	case result == "":
		return update.ReasonManual + ": rollback requested"
	case result == "watchdog":
		return "watchdog_timeout: the unit was killed by its watchdog and systemd gave up on it (OnFailure=)"
	case result == "oom-kill":
		return "memory_limit: the unit was killed for lack of memory and systemd gave up on it (OnFailure=)"
	}
	return fmt.Sprintf("crash_loop: systemd gave up on the unit (OnFailure=; result %s, exit %s %s)",
		result, os.Getenv("MONITOR_EXIT_CODE"), os.Getenv("MONITOR_EXIT_STATUS"))
}

var markGoodCommand = command{
	name:    "mark-good",
	summary: "end a trial by keeping the new version",
	help: "Commits the version under trial now, without waiting for the rest of its confirmation window: its slot " +
		"becomes good and the previous slot stays the rollback target. With no trial in progress it does nothing (exit 0).",
	examples: []example{{"mark-good", "keep the version under trial"}},
	run:      runMarkGood,
}

var markBadCommand = command{
	name:    "mark-bad",
	summary: "end a trial (or leave the active version) by marking it bad",
	help: "Marks the version under trial (or, with no trial, the active version) bad with reason manual, swaps the " +
		"link back to the previous good slot and restores that version. Run again, it does nothing (exit 0).",
	examples: []example{{"mark-bad", "reject the version under trial and go back"}},
	run:      runMarkBad,
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
