package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/modelslot/modelslot/internal/fetch"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// runChild installs <channel URL> <public key> <state dir> <model> the way the
// command does (fetch.Source through the updater, with no health to confirm):
// resolve, plan against the active slot, check space, download, assemble,
// commit, activate.
func runChild(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: -child URL PUBKEY STATEDIR MODEL")
	}
	// A soft memory limit, as the command sets it: the installer's buffers are
	// bounded, and the limit tells the collector not to let garbage double them.
	// MODELSLOT_BENCH_NO_MEMLIMIT=1 measures without it.
	if os.Getenv("MODELSLOT_BENCH_NO_MEMLIMIT") == "" {
		debug.SetMemoryLimit(48 << 20)
	}
	if name := os.Getenv("MODELSLOT_BENCH_CPUPROFILE"); name != "" {
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	trusted, err := verify.LoadKeyring([]string{args[1]})
	if err != nil {
		return err
	}
	s, err := slots.Open(ctx, slots.Config{Dir: args[2], Model: args[3]}, "install")
	if err != nil {
		return err
	}
	defer s.Close()
	src, err := fetch.OpenSource(ctx, args[0], s, fetch.SourceOptions{Trusted: trusted})
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := (&update.Updater{Store: s, Workers: verify.Workers()}).Install(ctx, src.Manifest, src); err != nil {
		return err
	}
	return printPeakRSS()
}

// printPeakRSS writes this process's peak RSS (VmHWM) in bytes to stdout for
// the parent. The parent cannot use wait4's ru_maxrss: a child forked from a
// large parent is charged the parent's pages until it execs.
func printPeakRSS() error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return err
			}
			fmt.Println(kb << 10)
			return nil
		}
	}
	return fmt.Errorf("no VmHWM in /proc/self/status")
}
