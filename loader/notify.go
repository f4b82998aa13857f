package loader

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// sd_notify states. systemd 252 has no Type=notify-reload, but a Type=notify
// unit that sends RELOADING=1 is shown as reloading until READY=1;
// MONOTONIC_USEC is what newer managers require alongside RELOADING=1.
const (
	stateReady     = daemon.SdNotifyReady
	stateReloading = daemon.SdNotifyReloading
	stateWatchdog  = daemon.SdNotifyWatchdog
)

// notify sends states to systemd. Outside systemd (no NOTIFY_SOCKET) it does
// nothing; a failure to send is logged, because the server can serve anyway.
func notify(log *slog.Logger, states ...string) {
	msg := ""
	for _, s := range states {
		msg += s + "\n"
		if s == stateReloading {
			msg += daemon.SdNotifyMonotonicUsec() // has its own newline
		}
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
}

// watchdog pings systemd at half of WATCHDOG_USEC while alive returns nil
// within that half interval; a server whose serving path hangs stops pinging
// and is killed by systemd. It returns at once when no watchdog is asked for.
func watchdog(ctx context.Context, log *slog.Logger, alive func(context.Context) error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("WATCHDOG_USEC is not valid; not pinging the watchdog", "err", err)
		return
	}
	if interval == 0 {
		return
	}
	half := interval / 2
	log.Info("watchdog on", "interval", interval)
	t := time.NewTicker(half)
	defer t.Stop()
	failing := false
	check := &aliveCheck{alive: alive}
	for {
		if err := check.run(ctx, half); err != nil {
			if !failing {
				log.Error("server not alive; no longer pinging the watchdog", "err", err)
			}
			failing = true
		} else {
			if failing {
				log.Info("server alive again; pinging the watchdog")
			}
			failing = false
			notify(log, stateWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// aliveCheck runs the server's liveness check without ever blocking the
// watchdog loop: a check that has not returned counts as a failure, and no
// second one is started beside it, so a hung server leaks one goroutine, not
// one per tick.
type aliveCheck struct {
	alive   func(context.Context) error
	pending chan error
}

func (a *aliveCheck) run(ctx context.Context, within time.Duration) error {
	if a.alive == nil {
		return ctx.Err()
	}
	if a.pending == nil {
		a.pending = make(chan error, 1)
		cctx, cancel := context.WithTimeout(ctx, within)
		go func() { defer cancel(); a.pending <- a.alive(cctx) }()
	}
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case err := <-a.pending:
		a.pending = nil
		return err
	case <-t.C:
		return fmt.Errorf("liveness check did not answer within %v", within)
	case <-ctx.Done():
		return ctx.Err()
	}
}
