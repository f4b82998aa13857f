package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/agent"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/device"
	"github.com/modelslot/modelslot/systemd"
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
	a.Install = func(ctx context.Context, d *device.Model, source string, progress func(done, total int64)) error {
		_, err := d.InstallSource(ctx, source, device.InstallOptions{Progress: progress})
		return err
	}
	go func() {
		if err := systemd.RunWatchdog(ctx, nil); err != nil {
			slog.Warn("agent: systemd watchdog", "err", err)
		}
	}()
	err = a.Run(ctx, func() { systemd.NotifyReady() })
	systemd.NotifyStopping()
	return err
}
