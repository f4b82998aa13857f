package testutil

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// HighWaterRSS is process pid's own peak resident set (VmHWM) in bytes, or
// 0 when it cannot be read (the process is gone). Not getrusage's maxrss: a
// child started by fork/exec inherits in it the parent's peak at exec time,
// so a small child of a large test binary reads as large.
func HighWaterRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// WatchRSS polls pid's VmHWM every 20 ms until stop is called and returns
// the highest value read: the process's own peak, up to its last 20 ms.
func WatchRSS(pid int) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := HighWaterRSS(pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}
