package systemd

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The notify functions speak sd_notify for modelslot's own agent unit. Outside
// systemd (NOTIFY_SOCKET unset) they do nothing and return nil, so the same
// binary runs under systemd, in a terminal and in tests. They return an error
// only when the socket is set but the message cannot be sent.

// NotifyReady tells systemd the agent finished starting (Type=notify).
func NotifyReady() error { return notify(daemon.SdNotifyReady) }

// NotifyStopping tells systemd the agent is shutting down.
func NotifyStopping() error { return notify(daemon.SdNotifyStopping) }

// NotifyWatchdog pets the watchdog once (WatchdogSec=).
func NotifyWatchdog() error { return notify(daemon.SdNotifyWatchdog) }

// NotifyStatus sets the one-line status `systemctl status` shows.
func NotifyStatus(status string) error { return notify("STATUS=" + status) }

func notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}

// RunWatchdog pets the watchdog at half of WatchdogSec until ctx ends, as long
// as alive returns true; when alive says no (the agent's main loop is stuck),
// it stops petting so systemd kills and restarts the agent. Without a watchdog
// for this process (WatchdogSec unset, or WATCHDOG_PID naming another process)
// it returns at once. alive may be nil.
func RunWatchdog(ctx context.Context, alive func() bool) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return fmt.Errorf("read the watchdog settings (WATCHDOG_USEC): %w", err)
	}
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if alive != nil && !alive() {
				continue
			}
			if err := NotifyWatchdog(); err != nil {
				return err
			}
		}
	}
}
