package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/modelslot/modelslot/internal/agent"
	"github.com/modelslot/modelslot/internal/config"
)

func runAgent(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("agent", g)
	metricsAddr := fs.String("metrics-addr", "", "Prometheus /metrics address (default [agent] metrics_addr; empty: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if g.logLevel == "warn" && envOr("MODELSLOT_LOG_LEVEL", "") == "" {
		setupLogging("info", g.stderr) // a daemon's log is its only voice
	}
	cfg, err := config.Load(g.config)
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
	go feedWatchdog(ctx)
	err = a.Run(ctx, func() { daemon.SdNotify(false, daemon.SdNotifyReady) })
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	return err
}

// feedWatchdog pings systemd's watchdog at half its interval while the process
// runs; outside systemd (WATCHDOG_USEC unset) it returns at once.
func feedWatchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
				slog.Warn("agent: watchdog ping failed", "err", err)
			}
		}
	}
}
