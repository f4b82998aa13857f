package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/rollout"
)

var rolloutCommand = cli.Command{
	Name: "rollout",
	Synopsis: []string{
		"create --manifest URL [--channel C] [--stages 5,30,100] [--soak 1h] [--success 95] [--max-failures N] [--max-failure-share P] [--abort-rollback] [--id ID] [--salt S]",
		"status [ID] [--json]",
		"pause|resume|abort ID [--reason TEXT]",
	},
	Summary: "staged fleet rollouts through the controller",
	Help: "Talks to the controller (modelslot-fleet fleet serve) over its JSON API. create starts a rollout of a signed " +
		"manifest of --model to the devices that follow --channel, stage after stage: each stage's share of the fleet " +
		"(cumulative percentages), its minimum soak time and success threshold, and the failure threshold that halts " +
		"it. status shows one rollout (or all): its state, stage, devices and failures by reason. pause stops new " +
		"starts, resume goes on, abort ends it for good (and, with abort_rollback, rolls back the devices that took " +
		"it). Exit 2 for a request the controller calls invalid, 1 for a refusal or an unreachable controller " +
		"(docs/fleet.md).",
	Examples: []cli.Example{
		{Cmd: "--model demo rollout create --manifest https://repo/demo/manifests/v2.json --stages 5,30,100 --soak 1h", What: "roll v2 out to 5 %, then 30 %, then every device, an hour apart at least"},
		{Cmd: "rollout status demo-v2-3fa1c2", What: "where a rollout is, and why"},
		{Cmd: "rollout abort demo-v2-3fa1c2 --reason \"probe latency\"", What: "stop it for good"},
	},
	Flags: func(fs *flag.FlagSet) {
		rolloutCreateFlags(fs, &cli.Options{}, &createFlags{})
		fs.String("reason", "", reasonUsage)
	},
	Run: runRollout,
}

const reasonUsage = "why, for the rollout's history and the devices' logs"

// runRollout: `modelslot rollout create|status|pause|resume|abort`, through
// the controller's API.
func runRollout(ctx context.Context, g *cli.Options, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := cli.NewFlagSet("rollout", g) // --help lists every flag of the command
		rolloutCreateFlags(fs.FlagSet, g, &createFlags{})
		fs.String("reason", "", reasonUsage)
		if err := cli.ParseFlags(fs, args); err != nil {
			return err
		}
		return cli.UsageErrorf("rollout: want a subcommand: create, status, pause, resume, abort")
	}
	switch args[0] {
	case "create":
		return runRolloutCreate(ctx, g, args[1:])
	case "status":
		return runRolloutStatus(ctx, g, args[1:])
	case "pause", "resume", "abort":
		return runRolloutChange(ctx, g, args[0], args[1:])
	}
	return cli.UsageErrorf("rollout: unknown subcommand %q: create, status, pause, resume, abort", args[0])
}

type createFlags struct {
	req                        fleet.CreateRequest
	stages, success, failShare string
	soak                       time.Duration
	maxFailures                int
}

// rolloutCreateFlags registers create's flags (and --json and the
// controller's), the same for its run and its documentation.
func rolloutCreateFlags(fs *flag.FlagSet, g *cli.Options, f *createFlags) *controllerFlags {
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
	fs.StringVar(&f.req.ID, "id", "", "rollout id (default: <model>-<version>-<random>)")
	fs.StringVar(&f.req.Channel, "channel", "stable", "channel the devices follow (their rollout_channel)")
	fs.StringVar(&f.req.ManifestURL, "manifest", "", "URL of the signed manifest to roll out (<repo>/<model>/manifests/<version>.json)")
	fs.StringVar(&f.stages, "stages", "5,30,100", "cumulative shares of the fleet in percent, one per stage")
	fs.DurationVar(&f.soak, "soak", time.Hour, "minimum time each stage runs before the next opens")
	fs.StringVar(&f.success, "success", "95", "percent of a stage's devices that must succeed before the next opens")
	fs.IntVar(&f.maxFailures, "max-failures", 1, "halt once this many devices failed (0: no count limit)")
	fs.StringVar(&f.failShare, "max-failure-share", "0", "halt once this percent of the opened stages' devices failed (0: no share limit)")
	fs.BoolVar(&f.req.AbortRollback, "abort-rollback", true, "when aborted, devices that took the rollout roll back")
	fs.StringVar(&f.req.Salt, "salt", "", "cohort salt (default: random; set it to repeat a rollout's cohorts)")
	return controllerFlag(fs)
}

func runRolloutCreate(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("rollout create", g)
	var f createFlags
	api := rolloutCreateFlags(fs.FlagSet, g, &f)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	f.req.Model = g.Model
	if f.req.Model == "" || f.req.ManifestURL == "" {
		return cli.UsageErrorf("rollout create needs --model and --manifest")
	}
	stages, err := f.stageList()
	if err != nil {
		return err
	}
	f.req.Stages = stages
	var s fleet.Status
	if err := newAPIClient(g, api).do(ctx, "POST", "/v1/rollouts", f.req, &s); err != nil {
		return err
	}
	return printRollout(g, &s)
}

func (f *createFlags) stageList() ([]rollout.Stage, error) {
	success, err := basisPoints("--success", f.success)
	if err != nil {
		return nil, err
	}
	failShare, err := basisPoints("--max-failure-share", f.failShare)
	if err != nil {
		return nil, err
	}
	var out []rollout.Stage
	for _, p := range strings.Split(f.stages, ",") {
		share, err := basisPoints("--stages", strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		out = append(out, rollout.Stage{Share: share, MinSoak: rollout.Duration(f.soak), Success: success,
			MaxFailures: f.maxFailures, MaxFailureShare: failShare})
	}
	return out, nil
}

// basisPoints reads a percentage ("5", "0.5") as basis points.
func basisPoints(flagName, pct string) (uint32, error) {
	v, err := strconv.ParseFloat(pct, 64)
	if err != nil || v < 0 || v > 100 {
		return 0, cli.UsageErrorf("%s %q: want a percentage from 0 to 100", flagName, pct)
	}
	return uint32(math.Round(v * 100)), nil
}

func runRolloutStatus(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("rollout status", g)
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
	api := controllerFlag(fs.FlagSet)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	c := newAPIClient(g, api)
	if fs.NArg() == 1 {
		var s fleet.Status
		if err := c.do(ctx, "GET", "/v1/rollouts/"+fs.Arg(0), nil, &s); err != nil {
			return err
		}
		return printRollout(g, &s)
	}
	var all []fleet.Status
	if err := c.do(ctx, "GET", "/v1/rollouts", nil, &all); err != nil {
		return err
	}
	if g.JSON {
		return json.NewEncoder(g.Stdout).Encode(all)
	}
	w := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ROLLOUT\tMODEL/CHANNEL\tTARGET\tSTATE\tSTAGE\tSUCCEEDED\tFAILED")
	for _, s := range all {
		r := s.Rollout
		fmt.Fprintf(w, "%s\t%s/%s\t%s\t%s\t%d/%d\t%d/%d\t%d\n", r.ID, r.Model, r.Channel, r.Target.Version, r.State,
			r.Stage+1, len(r.Stages), s.Succeeded, s.Cohort, s.Failed)
	}
	return w.Flush()
}

func runRolloutChange(ctx context.Context, g *cli.Options, op string, args []string) error {
	fs := cli.NewFlagSet("rollout "+op, g)
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
	reason := fs.String("reason", "", reasonUsage)
	api := controllerFlag(fs.FlagSet)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageErrorf("rollout %s ID", op)
	}
	var s fleet.Status
	if err := newAPIClient(g, api).do(ctx, "POST", "/v1/rollouts/"+fs.Arg(0)+"/"+op, map[string]string{"reason": *reason}, &s); err != nil {
		return err
	}
	return printRollout(g, &s)
}

func printRollout(g *cli.Options, s *fleet.Status) error {
	if g.JSON {
		return json.NewEncoder(g.Stdout).Encode(s)
	}
	r := s.Rollout
	fmt.Fprintf(g.Stdout, "rollout %s: %s/%s → %s (sequence %d), revision %d\n", r.ID, r.Model, r.Channel, r.Target.Version, r.Target.Sequence, r.Revision)
	fmt.Fprintf(g.Stdout, "  state %s, stage %d of %d (%s of the fleet) since %s\n", r.State, r.Stage+1, len(r.Stages),
		percent(r.Stages[r.Stage].Share), s.StageOpened.Format(time.RFC3339))
	if r.Reason != "" {
		fmt.Fprintf(g.Stdout, "  reason: %s\n", r.Reason)
	}
	fmt.Fprintf(g.Stdout, "  devices in the opened stages: %d, succeeded %d, failed %d\n", s.Cohort, s.Succeeded, s.Failed)
	for reason, n := range s.Failures {
		fmt.Fprintf(g.Stdout, "    failed: %s × %d\n", reason, n)
	}
	for reason, n := range s.Refusals {
		fmt.Fprintf(g.Stdout, "    refused the document: %s × %d\n", reason, n)
	}
	return nil
}

func percent(bp uint32) string { return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%" }
