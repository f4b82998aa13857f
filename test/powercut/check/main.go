// Command check judges one power cut of test/powercut: it reads the guest's
// console log and the ext4 image mounted on the host (after e2fsck replayed the
// journal, standing in for a reboot) and checks the invariants of DESIGN.md —
// the link points at a complete slot whose files match its manifest, state.json
// parses and agrees with the link, no acknowledged step is lost, and the real
// modelslot recovers the image to a clean, verified state.
//
// It prints one line, "PASS ..." or "FAIL <kind>: ...", and exits 0 or 1; exit
// 2 means the cut cannot be judged (no START line: the guest never reached the
// driver). The kind lets a run count how the canary was caught.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	mnt := flag.String("mnt", "", "where the image is mounted (read-write: recovery writes)")
	logFile := flag.String("log", "", "the guest's serial console log")
	bin := flag.String("modelslot", "modelslot", "the modelslot binary that recovers the image")
	flag.Parse()
	if *mnt == "" || *logFile == "" {
		fmt.Fprintln(os.Stderr, "usage: check -mnt DIR -log FILE [-modelslot BIN]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, err := readLog(*logFile)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	if !log.Started {
		fmt.Println("NOSTART the guest never reached the driver")
		os.Exit(2)
	}
	if err := judge(ctx, *bin, *mnt, log); err != nil {
		kind := "other"
		if f, ok := err.(*failure); ok {
			kind = f.kind
		}
		fmt.Printf("FAIL %s: %v\n", kind, err)
		os.Exit(1)
	}
	fmt.Printf("PASS acked step %d (%s)%s\n", log.AckedN, log.Acked, inFlightText(log))
}

func readLog(name string) (*serialLog, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseLog(f)
}

// judge runs the checks in the order a device lives them: what the server sees
// at boot, then what modelslot recovers to.
func judge(ctx context.Context, bin, mnt string, log *serialLog) error {
	if len(log.Errors) > 0 {
		return failf(kindDriver, "the driver reported a failed step before the cut: %s", log.Errors[0])
	}
	if err := checkRaw(ctx, mnt, log); err != nil {
		return err
	}
	return checkRecovered(ctx, bin, mnt, log)
}

// Kinds of failure, for the counts of a run.
const (
	kindDriver   = "driver-error" // a step failed in the guest, before the cut
	kindState    = "state"        // state.json missing, truncated or invalid
	kindLink     = "link"         // the link is missing or disagrees with state.json
	kindTorn     = "torn-slot"    // the served slot does not match its manifest
	kindLost     = "lost-step"    // an acknowledged step is not on the disk
	kindRecovery = "recovery"     // modelslot did not recover to a clean, verified state
)

// failure is a broken invariant of one kind.
type failure struct {
	kind string
	err  error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func failf(kind, format string, args ...any) error {
	return &failure{kind: kind, err: fmt.Errorf(format, args...)}
}
