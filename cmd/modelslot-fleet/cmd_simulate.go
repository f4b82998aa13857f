package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/simulate"
)

// simulateFlags are `fleet simulate`'s own flags.
type simulateFlags struct {
	opts     simulate.Options
	trusted  string
	rollout  string
	until    string
	duration time.Duration
	progress time.Duration
}

func fleetSimulateFlags(fs *flag.FlagSet) *simulateFlags {
	f := &simulateFlags{}
	o := &f.opts
	fs.IntVar(&o.Devices, "devices", 100, "simulated devices `N`")
	fs.StringVar(&o.Broker, "broker", "mqtt://127.0.0.1:1883", "the broker's `URL` (mqtt://host:port)")
	fs.StringVar(&o.Source, "source", "", "channel or manifest `URL` every device installs before its agent starts (empty: start empty)")
	fs.StringVar(&o.RolloutChannel, "rollout-channel", "stable", "the `CHANNEL` whose rollouts the devices follow")
	fs.StringVar(&f.trusted, "trusted-keys", "", "the publisher's .pub `FILES`, comma-separated")
	fs.StringVar(&f.rollout, "rollout-keys", "", "the rollout key's .pub `FILES`, comma-separated")
	fs.StringVar(&o.FailVersion, "fail-version", "", "the `VERSION` the probe stand-in fails (the devices revert it)")
	fs.StringVar(&o.StateDir, "state-dir", "/dev/shm/modelslot-sim", "the devices' state roots go beneath this `DIR` (a tmpfs)")
	fs.StringVar(&o.IDPrefix, "id-prefix", "sim-", "device ids are `PREFIX`0, PREFIX1, …")
	fs.StringVar(&o.Prefix, "topic-prefix", "modelslot", "the MQTT topic `PREFIX`")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "devices set up, and installs run, at once (`N`)")
	fs.DurationVar(&o.Ramp, "ramp", 0, "spread the agents' starts over this `DURATION`")
	fs.DurationVar(&o.Heartbeat, "heartbeat", time.Minute, "each device's retained status refresh (`DURATION`)")
	fs.DurationVar(&o.RetryMin, "retry-min", 10*time.Second, "each agent's restore check and first command retry (`DURATION`; a device's is 2s)")
	fs.StringVar(&f.until, "until", "", "stop once every device runs `VERSION`, nothing pending and every event delivered")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this `DURATION` (0: at --until or SIGTERM)")
	fs.DurationVar(&f.progress, "progress", 5*time.Second, "print progress every `DURATION`")
	return f
}

func commaList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// errNotConverged: --until's version was not reached within --duration.
var errNotConverged = errors.New("fleet simulate: the fleet did not converge")

// runFleetSimulate runs --devices real agents in this process until --until
// is reached, --duration passes or a signal stops it, printing progress and
// a summary.
func runFleetSimulate(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("fleet simulate", g)
	f := fleetSimulateFlags(fs.FlagSet)
	fs.BoolVar(&g.JSON, "json", false, "print the summary as JSON")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if g.Model == "" {
		return cli.UsageErrorf("fleet simulate: --model is required (the model the devices run)")
	}
	if f.trusted == "" {
		return cli.UsageErrorf("fleet simulate: --trusted-keys is required: devices install only what a key they trust signed")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64) // main's 48 MiB is one device's budget, not a fleet's
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // ten thousand agents' garbage: fewer collections, memory is cheaper here
	}
	if err := simulate.RaiseFileLimit(); err != nil {
		fmt.Fprintf(g.Stderr, "modelslot-fleet: fleet simulate: could not raise the open-file limit (%v); a large fleet may run out\n", err)
	}
	o := f.opts
	o.Model, o.TrustedKeys, o.RolloutKeys = g.Model, commaList(f.trusted), commaList(f.rollout)
	if len(o.RolloutKeys) == 0 {
		o.RolloutChannel = ""
	}
	sim, err := simulate.New(o)
	if err != nil {
		return cli.UsageErrorf("%v", err)
	}
	start := time.Now()
	if err := sim.Seed(ctx); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if f.duration > 0 {
		runCtx, stop = context.WithTimeout(runCtx, f.duration)
		defer stop()
	}
	done := make(chan error, 1)
	go func() { done <- sim.Run(runCtx, nil) }()
	converged := watchFleet(runCtx, g, sim, f, start)
	stop()
	runErr := <-done
	sum := summarize(sim, f.until, time.Since(start))
	printSummary(g, sum)
	switch {
	case runErr != nil:
		return runErr
	case f.until != "" && !converged && ctx.Err() == nil:
		return fmt.Errorf("%w on %s within %s: %d of %d devices run it", errNotConverged, f.until, f.duration, sum.Converged, sum.Devices)
	}
	return nil
}

// watchFleet prints progress until ctx ends or every device runs --until
// with its events delivered; it reports whether that happened.
func watchFleet(ctx context.Context, g *cli.Options, sim *simulate.Fleet, f *simulateFlags, start time.Time) bool {
	t := time.NewTicker(f.progress)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		sn := sim.Snapshot()
		produced, undelivered := sn.Events()
		if !g.JSON {
			fmt.Fprintf(g.Stdout, "%6s  %s  online %d, installs %d, events %d (%d undelivered)\n",
				time.Since(start).Round(time.Second), sn, sim.Online(), sim.Installs(), produced, undelivered)
		}
		if f.until != "" && sn.On(f.until) == len(sn.Devices) && undelivered == 0 {
			return true
		}
	}
}

// simulateSummary is what a simulation ended with.
type simulateSummary struct {
	Devices     int            `json:"devices"`
	Until       string         `json:"until,omitempty"`
	Converged   int            `json:"converged"` // devices on Until (or on the most common version), nothing pending
	Failed      int            `json:"failed"`    // devices that reverted a version
	Counts      map[string]int `json:"counts"`    // "version/state" → devices
	Installs    int64          `json:"installs"`
	Events      int            `json:"events"`
	Undelivered int            `json:"undelivered"`
	Seconds     float64        `json:"seconds"`
}

func summarize(sim *simulate.Fleet, until string, elapsed time.Duration) simulateSummary {
	sn := sim.Snapshot()
	s := simulateSummary{Devices: len(sn.Devices), Until: until, Counts: sn.Counts(), Installs: sim.Installs(), Seconds: elapsed.Seconds()}
	s.Events, s.Undelivered = sn.Events()
	versions := map[string]int{}
	for _, d := range sn.Devices {
		if d.Failed != "" {
			s.Failed++
		}
		if d.Version != "" && d.State == simulate.StateOK {
			versions[d.Version]++
		}
	}
	if until == "" { // the most common version
		for _, v := range slices.Sorted(maps.Keys(versions)) {
			if versions[v] > versions[until] {
				until = v
			}
		}
	}
	s.Converged = versions[until]
	return s
}

func printSummary(g *cli.Options, s simulateSummary) {
	if g.JSON {
		json.NewEncoder(g.Stdout).Encode(s)
		return
	}
	on := s.Until
	if on == "" {
		on = "the most common version"
	}
	fmt.Fprintf(g.Stdout, "simulated %d devices for %.1f s: %d converged on %s, %d failed a version; %d installs, %d events (%d undelivered)\n",
		s.Devices, s.Seconds, s.Converged, on, s.Failed, s.Installs, s.Events, s.Undelivered)
	for _, k := range slices.Sorted(maps.Keys(s.Counts)) {
		fmt.Fprintf(g.Stdout, "  %-20s %d\n", k, s.Counts[k])
	}
}
