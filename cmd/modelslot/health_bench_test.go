package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchEnv turns TestHealthRevertTimes on; it is a measurement for make bench,
// not a test for every run.
const benchEnv = "MODELSLOT_HEALTH_BENCH"

// TestHealthRevertTimes measures, per failure kind, how long the old version is
// away: from the activation of the broken version (modelslot's "confirming"
// step) to modelslot's verdict ("rolling_back"), and from the verdict to the
// old version answering the probe again, as seen by a client polling every
// 10 ms, not by modelslot. Run with MODELSLOT_HEALTH_BENCH=1 (runs per kind:
// MODELSLOT_HEALTH_BENCH_RUNS, default 3). Each kind is held to the goal
// total ≤ WatchdogSec + 2 s (the median over its runs).
func TestHealthRevertTimes(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("a measurement for make bench: set " + benchEnv + "=1")
	}
	runs, _ := strconv.Atoi(os.Getenv(benchEnv + "_RUNS"))
	runs = max(runs, 1)
	if os.Getenv(benchEnv+"_RUNS") == "" {
		runs = 3
	}
	kinds := []struct{ version, reason string }{
		{"v3-crash", "crash_loop"}, {"v3-hang", "watchdog_timeout"}, {"v3-slow", "latency_limit"},
		{"v3-fat", "memory_limit"}, {"v3-wrong", "probe_mismatch"},
	}
	const watchdog = time.Second
	goal := watchdog + 2*time.Second
	var rows []string
	for _, k := range kinds {
		d := newSDDevice(t, sdOptions{window: 2 * time.Second, watchdog: watchdog})
		d.install(0, "v1")
		var detect, back, total []time.Duration
		for range runs {
			m := d.measureRevert(k.version, k.reason)
			detect, back, total = append(detect, m[0]), append(back, m[1]), append(total, m[2])
		}
		met := "yes"
		if medianOf(total) > goal {
			met = "NO"
		}
		rows = append(rows, fmt.Sprintf("%-8s %-17s %4d %10s %10s %10s %10s %8s %5s", strings.TrimPrefix(k.version, "v3-"), k.reason, runs,
			median(detect), median(back), median(total), slices.Max(total).Round(time.Millisecond), goal, met))
	}
	fmt.Printf("\nfailure → old version answering again (systemd user manager, restart activation, WatchdogSec=%s, window 2s)\n", watchdog)
	fmt.Printf("%-8s %-17s %4s %10s %10s %10s %10s %8s %5s\n", "kind", "reason", "runs", "detect", "restore", "total", "max total", "goal", "met")
	for _, r := range rows {
		fmt.Println(r)
	}
	fmt.Println("detect: activation of the broken version → modelslot's verdict; restore: verdict → v1 answers its probe (10 ms client poll); medians.")
	fmt.Printf("goal: total ≤ WatchdogSec + 2s = %s; met: whether the median total is within it.\n", goal)
}

var stepLine = regexp.MustCompile(`time=(\S+) level=INFO msg="update step" .*status=(confirming|rolling_back)`)

// measureRevert installs version, which must revert with reason, and returns
// detect, restore and total as described above.
func (d *sdDevice) measureRevert(version, reason string) [3]time.Duration {
	d.t.Helper()
	poll := d.pollVersions()
	r := d.run([]string{"MODELSLOT_LOG_LEVEL=info"}, "install", "--insecure", "--label", version, modelDir(version))
	seen := poll("v1")
	if r.code != exitRolledBack {
		d.t.Fatalf("install %s: want exit %d, got %v", version, exitRolledBack, r)
	}
	failedWith(d.t, d.status(), version, reason)
	steps := map[string]time.Time{}
	for _, m := range stepLine.FindAllStringSubmatch(r.stderr, -1) {
		if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			if _, ok := steps[m[2]]; !ok {
				steps[m[2]] = at
			}
		}
	}
	act, verdict := steps["confirming"], steps["rolling_back"]
	if act.IsZero() || verdict.IsZero() {
		d.t.Fatalf("no confirming/rolling_back step in the log:\n%s", r.stderr)
	}
	for _, s := range seen {
		if s.at.After(verdict) && s.version == "v1" {
			return [3]time.Duration{verdict.Sub(act), s.at.Sub(verdict), s.at.Sub(act)}
		}
	}
	d.t.Fatalf("v1 never answered after the verdict of %s", version)
	return [3]time.Duration{}
}

type sample struct {
	at      time.Time
	version string // "" when the probe got no good answer
}

// pollVersions sends v1's probe input every 10 ms until the returned function
// is called and has seen version answer once more (at most 5 s), and returns
// what answered when. Waiting for that answer matters: the restore's probe
// takes only a few milliseconds, so modelslot may exit before the 10 ms poll
// saw the old version back; it stays back, so its next answer still counts.
func (d *sdDevice) pollVersions() func(version string) []sample {
	input := []byte(readFile(filepath.Join(modelDir("v1"), "probe", "input.json")))
	c := http.Client{Timeout: 100 * time.Millisecond}
	stop := make(chan struct{})
	var mu sync.Mutex
	var seen []sample
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			s := sample{}
			if resp, err := c.Post(d.probeURL(), "application/json", bytes.NewReader(input)); err == nil {
				var a struct{ Version string }
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&a) == nil {
					s.version = a.Version
				}
				resp.Body.Close()
			}
			s.at = time.Now()
			mu.Lock()
			seen = append(seen, s)
			mu.Unlock()
		}
	}()
	return func(version string) []sample {
		from := time.Now()
		for deadline := from.Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			back := len(seen) > 0 && seen[len(seen)-1].version == version && seen[len(seen)-1].at.After(from)
			mu.Unlock()
			if back {
				break
			}
		}
		close(stop)
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

func median(ds []time.Duration) string {
	return medianOf(ds).Round(time.Millisecond).String()
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
