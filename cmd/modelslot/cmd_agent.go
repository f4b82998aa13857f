package main

import (
	"context"
	"flag"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/agent"
	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/systemd"
)

var agentCommand = cli.Command{
	Name:     "agent",
	Synopsis: []string{"[--metrics-addr ADDR]"},
	Summary:  "the daemon: recovery, event delivery, platform commands, metrics",
	Help: "Runs until SIGTERM (exit 0). At start it recovers every model: an interrupted step is finished or undone and " +
		"a trial left by a crash or a reboot is judged again, or reverted past max_attempts; then it tells systemd READY=1. " +
		"It delivers the outbox's events to the platform (MQTT, HTTP), runs the platform's commands, follows each model's " +
		"source channel and serves Prometheus metrics. It is meant to run as modelslot-agent.service (Type=notify, " +
		"WatchdogSec=); it logs at info unless --log-level says otherwise.",
	Examples: []cli.Example{
		{Cmd: "agent", What: "as the unit runs it"},
		{Cmd: "agent --metrics-addr 127.0.0.1:9101", What: "with /metrics on a local port"},
	},
	Flags: func(fs *flag.FlagSet) { agentFlags(fs) },
	Run:   runAgent,
}

func agentFlags(fs *flag.FlagSet) *string {
	return fs.String("metrics-addr", "", "Prometheus /metrics `ADDR`ess (default [agent] metrics_addr; empty: off)")
}

func runAgent(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("agent", g)
	metricsAddr := agentFlags(fs.FlagSet)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	cli.DaemonLogging(g)
	cfg, err := config.Load(g.Config)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	a.Metrics = cfg.Agent.MetricsAddr
	if *metricsAddr != "" {
		a.Metrics = *metricsAddr
	}
	a.Heartbeat = time.Duration(cfg.Agent.Heartbeat)
	go func() {
		// Fed only while the agent's loops make progress: a wedged loop
		// stops the pings and systemd restarts the agent.
		if err := systemd.RunWatchdog(ctx, a.Alive); err != nil {
			slog.Warn("agent: systemd watchdog", "err", err)
		}
	}()
	err = a.Run(ctx, func() { systemd.NotifyReady() })
	systemd.NotifyStopping()
	return err
}
