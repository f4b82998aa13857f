// Command testservice is a tiny service for tests against a real systemd manager:
// it reports READY and WATCHDOG through sd_notify, and can be told to stop pinging
// the watchdog, never become ready, exit, hold memory, or log its reloads, so each
// health failure can be produced on purpose. Build it with systemdtest.BuildService.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

type options struct {
	ready       bool
	readyDelay  time.Duration
	watchdogFor time.Duration
	exitAfter   time.Duration
	exitCode    int
	allocMB     int
	stamp       string
}

func main() {
	var o options
	flag.BoolVar(&o.ready, "ready", true, "send READY=1 (false: stay activating forever)")
	flag.DurationVar(&o.readyDelay, "ready-delay", 0, "wait this long before READY=1")
	flag.DurationVar(&o.watchdogFor, "watchdog-for", 0, "ping the watchdog this long, then stop (0: forever)")
	flag.DurationVar(&o.exitAfter, "exit-after", 0, "exit after this long (0: never)")
	flag.IntVar(&o.exitCode, "exit-code", 1, "exit status used by -exit-after")
	flag.IntVar(&o.allocMB, "alloc-mb", 0, "hold this many MiB of touched memory")
	flag.StringVar(&o.stamp, "stamp", "", "append 'start PID' and 'reload PID' lines to this file")
	flag.Parse()
	run(o)
}

func run(o options) {
	stampf(o.stamp, "start %d", os.Getpid())
	memory := alloc(o.allocMB)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	time.Sleep(o.readyDelay)
	if o.ready {
		notify(daemon.SdNotifyReady)
	}
	notify("STATUS=serving")
	exit := afterOrNever(o.exitAfter)
	stopPing := afterOrNever(o.watchdogFor)
	ping := time.NewTicker(watchdogInterval())
	for {
		select {
		case <-hup:
			notify(daemon.SdNotifyReloading)
			stampf(o.stamp, "reload %d", os.Getpid())
			notify(daemon.SdNotifyReady)
		case <-ping.C:
			notify(daemon.SdNotifyWatchdog)
		case <-stopPing:
			ping.Stop()
		case <-exit:
			_ = memory[len(memory)-1]
			os.Exit(o.exitCode)
		}
	}
}

// watchdogInterval pings at a third of WatchdogSec, or rarely when there is none.
func watchdogInterval() time.Duration {
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		return d / 3
	}
	return time.Hour
}

func afterOrNever(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return time.After(d)
}

// alloc returns n MiB with every page written, so it counts in RSS.
func alloc(n int) []byte {
	b := make([]byte, n<<20+1)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		fmt.Fprintf(os.Stderr, "testservice: sd_notify %q: %v\n", state, err)
	}
}

func stampf(path, format string, args ...any) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testservice: %v\n", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", args...)
}
