package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/session"
)

var recoverCommand = cli.Command{
	Name:    "recover",
	Summary: "finish what a crash, power cut or lost service manager interrupted (the agent does this at start)",
	Help: "For every configured model (or --model): finishes a pending link switch, resumes an interrupted trial (or " +
		"reverts it past max_attempts), and brings a version that a revert or rollback went back to into service if it " +
		"does not serve yet. status only reports these; recover acts. The agent does the same when it starts; this " +
		"command is for devices without the agent and for modelslot-recover.service, run once at boot. Exit 0 when " +
		"nothing is left pending, 1 when the version gone back to still does not serve (it stays pending).",
	Examples: []cli.Example{
		{Cmd: "recover", What: "after a power cut, on a device without the agent"},
		{Cmd: "--model demo recover", What: "one model only"},
	},
	Run: runRecover,
}

// runRecover finishes what a crash, a power cut or a lost service manager left
// half done, for every configured model (or --model): a pending link switch,
// an interrupted trial (resumed, or reverted past max_attempts) and a restore
// that has not reached the server yet. The agent does the same at start; this
// is for devices without it, and for the oneshot unit run at boot.
func runRecover(ctx context.Context, g *cli.Options, args []string) error {
	if err := cli.ParseFlags(cli.NewFlagSet("recover", g), args); err != nil {
		return err
	}
	cfg, models, err := selectedModels(g)
	if err != nil {
		return err
	}
	var errs []error
	for i := range models {
		if err := recoverModel(ctx, g, cfg, &models[i]); err != nil {
			errs = append(errs, fmt.Errorf("model %s: %w", models[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

func recoverModel(ctx context.Context, g *cli.Options, cfg *config.Config, m *config.Model) error {
	d, err := session.OpenToEndTrial(ctx, cfg, m, "recover")
	if err != nil {
		return err
	}
	defer d.Close()
	before := d.Store.State()
	if err := d.Recover(ctx); err != nil {
		return err
	}
	after := d.Store.State()
	did := "nothing to recover"
	switch {
	case before.Trial != nil && after.Trial == nil && after.Active == before.Trial.Slot:
		did = "resumed the interrupted trial of " + before.Trial.Version + ": committed"
	case before.Trial != nil && after.Trial == nil:
		did = "resumed the interrupted trial of " + before.Trial.Version + ": reverted"
	case before.Restore != nil:
		did = "brought " + before.Restore.Version + " back into service"
	}
	return printOutcome(g, d, true, did, "")
}
