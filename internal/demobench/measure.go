package demobench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// Run is the outcome of one measured series of swaps.
type Run struct {
	Mode     string
	Latency  []time.Duration // per swap: link swap → first good answer of the new version
	Summary  Summary
	Duration time.Duration
}

// Median and Max of the swap latencies.
func (r Run) Median() time.Duration {
	s := slices.Sorted(slices.Values(r.Latency))
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func (r Run) Max() time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	return slices.Max(r.Latency)
}

// Measure keeps load on the server while it swaps dev's link swaps times
// between slot b (v2) and slot a (v1). After each swap it calls activate (nil
// when the server follows the link by itself; a unit restart otherwise) and
// waits until the new version answers before the next swap.
func Measure(ctx context.Context, mode string, load Load, dev *Device, swaps int, activate func(context.Context) error) (Run, error) {
	lctx, stop := context.WithCancel(ctx)
	answers := make(chan []Answer, 1)
	go func() { answers <- load.Run(lctx) }()
	start := time.Now()
	var swapped []swapAt
	var err error
	for i := range swaps {
		target, version := dev.B, "v2"
		if i%2 == 1 {
			target, version = dev.A, "v1"
		}
		if err = Swap(dev.Link, target); err != nil {
			break
		}
		swapped = append(swapped, swapAt{time.Now(), version})
		if activate != nil {
			if err = activate(ctx); err != nil {
				err = fmt.Errorf("activate after swap %d: %w", i+1, err)
				break
			}
		}
		if err = waitVersion(ctx, load, version, 30*time.Second); err != nil {
			err = fmt.Errorf("swap %d to %s: %w", i+1, version, err)
			break
		}
		time.Sleep(100 * time.Millisecond) // let the load settle on the new version
	}
	stop()
	all := <-answers
	run := Run{Mode: mode, Summary: Summarize(all), Duration: time.Since(start)}
	run.Latency = latencies(swapped, all)
	return run, err
}

type swapAt struct {
	at      time.Time
	version string
}

// latencies finds, for each swap, the first good answer of the new version
// that arrived after it.
func latencies(swaps []swapAt, answers []Answer) []time.Duration {
	slices.SortFunc(answers, func(a, b Answer) int { return a.At.Compare(b.At) })
	var out []time.Duration
	for _, s := range swaps {
		for _, a := range answers {
			if a.Err == nil && a.Version == s.version && a.At.After(s.at) {
				out = append(out, a.At.Sub(s.at))
				break
			}
		}
	}
	return out
}

// waitVersion polls the server with the probe input until version answers.
func waitVersion(ctx context.Context, load Load, version string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Post(load.URL, "application/json", bytes.NewReader(load.Input))
		if err == nil {
			var a struct{ Version string }
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(b, &a) == nil && a.Version == version {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("version %s not answering after %v", version, limit)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Table prints runs side by side.
func Table(w io.Writer, runs []Run) {
	fmt.Fprintf(w, "%-34s %6s %12s %12s %9s %8s\n", "swap → new version answering", "swaps", "median", "max", "requests", "failed")
	for _, r := range runs {
		fmt.Fprintf(w, "%-34s %6d %12v %12v %9d %8d\n", r.Mode, len(r.Latency),
			r.Median().Round(100*time.Microsecond), r.Max().Round(100*time.Microsecond),
			r.Summary.OK+r.Summary.Failed, r.Summary.Failed)
	}
}
