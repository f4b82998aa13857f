package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/systemd"
)

var rollbackCommand = cli.Command{
	Name:     "rollback",
	Synopsis: []string{"[--if-trial] [--unit UNIT]"},
	Summary:  "go back to the previous good version now, and bring it back into service",
	Help: "Swaps the link back to the previous good slot, restarts (or reloads) the unit on it and waits until that version " +
		"answers its probe; only then does it report rolled_back. If it does not come back, the command says so (exit 1) " +
		"and the restore stays pending: the agent retries it with backoff, and `modelslot recover` or the next rollback " +
		"tries again. During a trial the " +
		"new version is reverted and marked bad; after a commit the version left is marked bad (reason manual), so a " +
		"second rollback changes nothing instead of swinging back. With one version only, there is nothing to go back to " +
		"(exit 1).\n\n" +
		"--if-trial reverts only a running trial and otherwise does nothing: it is what modelslot-rollback@.service runs " +
		"when systemd gives up on an inference unit (OnFailure=), with the reason systemd saw. --unit UNIT acts on the " +
		"models UNIT serves instead of --model (with --if-trial: the one in trial), so one OnFailure= template serves " +
		"every model.",
	Examples: []cli.Example{
		{Cmd: "rollback", What: "back to the previous good version"},
		{Cmd: "rollback --if-trial --unit demo-inference.service", What: "as the OnFailure= unit runs it"},
	},
	Flags: func(fs *flag.FlagSet) { rollbackFlags(fs) },
	Run:   runRollback,
}

func rollbackFlags(fs *flag.FlagSet) (ifTrial *bool, unit *string) {
	return fs.Bool("if-trial", false, "only revert a running trial; otherwise do nothing (for OnFailure= units)"),
		fs.String("unit", "", "act on the models UNIT serves (OnFailure=modelslot-rollback@%n.service passes it as %i), instead of --model")
}

func runRollback(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("rollback", g)
	ifTrial, unit := rollbackFlags(fs.FlagSet)
	if err := cli.ParseFlags(fs, args); err != nil {
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

func rollbackModel(ctx context.Context, g *cli.Options, t *session.Session, ifTrial bool) error {
	changed, err := t.Updater.RollbackFor(ctx, ifTrial, onFailureReason())
	if err != nil {
		return err
	}
	return printOutcome(g, t, changed, "rolled back", "nothing to roll back")
}

// rollbackByUnit rolls back every model that unit serves: with --if-trial that
// is the one in trial (trials are serialized per unit), so one OnFailure=
// template serves every model.
func rollbackByUnit(ctx context.Context, g *cli.Options, unit string, ifTrial bool) error {
	cfg, err := config.Load(g.Config)
	if err != nil {
		return err
	}
	models := session.ModelsOnUnit(cfg, unit)
	if g.Model != "" {
		m, err := cfg.Model(g.Model)
		if err != nil {
			return err
		}
		if m.Unit != unit {
			return cli.UsageErrorf("model %s is served by unit %q, not %q", m.Name, m.Unit, unit)
		}
		models = []*config.Model{m}
	}
	if len(models) == 0 {
		return cli.UsageErrorf("no configured model is served by unit %q; check `unit` in the config", unit)
	}
	var errs []error
	for _, m := range models {
		t, err := session.OpenToEndTrial(ctx, cfg, m, "rollback")
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
// started this command through OnFailure= (MONITOR_SERVICE_RESULT, classified
// as the systemd package classifies a unit's Result), or a person's request.
func onFailureReason() *reason.Error {
	result := os.Getenv("MONITOR_SERVICE_RESULT")
	if result == "" {
		return reason.New(reason.Manual, "rollback requested")
	}
	return reason.New(systemd.ReasonForResult(result), "systemd gave up on the unit (OnFailure=; result %s, exit %s %s)",
		result, os.Getenv("MONITOR_EXIT_CODE"), os.Getenv("MONITOR_EXIT_STATUS"))
}

// printOutcome says in one line what is active now.
func printOutcome(g *cli.Options, t *session.Session, changed bool, did, nothing string) error {
	st := t.Store.State()
	active := "no version"
	if st.Active != "" {
		active = fmt.Sprintf("%s (slot %s)", st.Slots[st.Active].Version, st.Active)
	}
	if !changed {
		fmt.Fprintf(g.Stdout, "%s: %s; active: %s\n", t.Model.Name, nothing, active)
		return nil
	}
	fmt.Fprintf(g.Stdout, "%s: %s; active: %s\n", t.Model.Name, did, active)
	return nil
}
