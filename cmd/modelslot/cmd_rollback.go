package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/device"
	"github.com/modelslot/modelslot/internal/update"
)

func runRollback(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("rollback", g)
	ifTrial := fs.Bool("if-trial", false, "only revert a running trial; otherwise do nothing (for OnFailure= units)")
	unit := fs.String("unit", "", "act on the models the unit serves (OnFailure=modelslot-rollback@%n.service passes it as %i), instead of --model")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *unit != "" {
		return rollbackByUnit(ctx, g, *unit, *ifTrial)
	}
	t, err := openToEndTrial(ctx, g, "rollback")
	if err != nil {
		return err
	}
	defer t.Close()
	return rollbackModel(ctx, g, t, *ifTrial)
}

func rollbackModel(ctx context.Context, g *globalOptions, t *device.Model, ifTrial bool) error {
	changed, err := t.Updater.RollbackFor(ctx, ifTrial, onFailureReason())
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "rolled back", "nothing to roll back")
}

// rollbackByUnit rolls back every model that unit serves: with --if-trial that
// is the one in trial (trials are serialized per unit), so one OnFailure=
// template serves every model.
func rollbackByUnit(ctx context.Context, g *globalOptions, unit string, ifTrial bool) error {
	cfg, err := config.Load(g.config)
	if err != nil {
		return err
	}
	models := device.ModelsOnUnit(cfg, unit)
	if g.model != "" {
		m, err := cfg.Model(g.model)
		if err != nil {
			return err
		}
		if m.Unit != unit {
			return usageErrorf("model %s is served by unit %q, not %q", m.Name, m.Unit, unit)
		}
		models = []*config.Model{m}
	}
	if len(models) == 0 {
		return usageErrorf("no configured model is served by unit %q; check `unit` in the config", unit)
	}
	var errs []error
	for _, m := range models {
		t, err := device.OpenToEndTrial(ctx, cfg, m, "rollback")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := rollbackModel(ctx, g, t, ifTrial); err != nil {
			errs = append(errs, fmt.Errorf("model %s: %w", m.Name, err))
		}
		t.Close()
	}
	return errors.Join(errs...)
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
