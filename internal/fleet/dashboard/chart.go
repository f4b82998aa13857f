package dashboard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
)

// The chart's drawing area, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH = 600.0, 160.0
	chartSteps     = 60 // samples across the time axis
	colors         = 8  // CSS classes v0…v7, reused past eight versions
	// chartSpan is the longest time the chart covers (ending now): older
	// changes still count, as the state the chart starts from.
	chartSpan = 7 * 24 * time.Hour
)

// chartTTL is how long a model's version changes are reused: reading them
// walks every event of the model (a tenth of a second at 10,000 devices), and
// the chart's resolution is a sixtieth of its span anyway.
const chartTTL = 10 * time.Second

type cachedChanges struct {
	read    time.Time // wall clock
	asOf    time.Time // the controller's clock (h.now) at the read
	changes []store.VersionChange
}

// versionChanges reads model's version changes, at most once per chartTTL,
// and says as of when (the controller's clock): the chart ends there, so its
// counts never claim to be newer than they are.
func (h *Handler) versionChanges(ctx context.Context, model string) ([]store.VersionChange, time.Time, error) {
	h.mu.Lock()
	c, ok := h.charts[model]
	h.mu.Unlock()
	if ok && time.Since(c.read) < chartTTL {
		return c.changes, c.asOf, nil
	}
	asOf := h.now()
	changes, err := h.c.DB.VersionChanges(ctx, model)
	if err != nil {
		return nil, time.Time{}, err
	}
	h.mu.Lock()
	h.charts[model] = cachedChanges{read: time.Now(), asOf: asOf, changes: changes}
	h.mu.Unlock()
	return changes, asOf, nil
}

// chart is the versions-over-time picture of one model: how many devices ran
// each version, stacked, from the first recorded event until now.
type chart struct {
	Start, End time.Time
	Max        int // devices at most (the y axis)
	Series     []series
	W, H       float64
	ViewBox    string // the plot with room for the axis labels
}

// series is one version's band of the stack.
type series struct {
	Version string
	Class   string // v0…v7
	Now     int    // devices on it at End
	Points  string // the band's polygon
}

// sample is how many devices ran each version at one time.
type sample struct {
	At  time.Time
	ByV map[string]int
}

// samples replays the version changes (oldest first) and counts, at each of
// chartSteps+1 evenly spaced times from the first change (at most chartSpan
// before end) to end, the devices on each version. It also returns the
// versions in order of first appearance.
func samples(changes []store.VersionChange, end time.Time) ([]sample, []string) {
	if len(changes) == 0 {
		return nil, nil
	}
	start := changes[0].At
	if start.Before(end.Add(-chartSpan)) {
		start = end.Add(-chartSpan)
	}
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	var versions []string
	current := map[string]string{} // device → version
	byV := map[string]int{}
	var out []sample
	i := 0
	for step := 0; step <= chartSteps; step++ {
		at := start.Add(time.Duration(int64(end.Sub(start)) * int64(step) / chartSteps))
		for ; i < len(changes) && !changes[i].At.After(at); i++ {
			c := changes[i]
			if old, ok := current[c.DeviceID]; ok {
				byV[old]--
			}
			current[c.DeviceID] = c.Version
			byV[c.Version]++
			if !slices.Contains(versions, c.Version) {
				versions = append(versions, c.Version)
			}
		}
		snap := make(map[string]int, len(byV))
		for v, n := range byV {
			snap[v] = n
		}
		out = append(out, sample{At: at, ByV: snap})
	}
	return out, versions
}

// newChart draws the stacked bands of the samples.
func newChart(changes []store.VersionChange, end time.Time) chart {
	ss, versions := samples(changes, end)
	c := chart{W: chartW, H: chartH, ViewBox: fmt.Sprintf("-40 -10 %.0f %.0f", chartW+50, chartH+30)}
	if len(ss) == 0 {
		return c
	}
	c.Start, c.End = ss[0].At, ss[len(ss)-1].At
	for _, s := range ss {
		total := 0
		for _, n := range s.ByV {
			total += n
		}
		c.Max = max(c.Max, total)
	}
	lower := make([]int, len(ss)) // the stack below the current band
	for vi, v := range versions {
		upper := make([]int, len(ss))
		for i, s := range ss {
			upper[i] = lower[i] + s.ByV[v]
		}
		c.Series = append(c.Series, series{Version: v, Class: fmt.Sprintf("v%d", vi%colors), Now: ss[len(ss)-1].ByV[v],
			Points: band(lower, upper, c.Max)})
		lower = upper
	}
	return c
}

// band is the polygon between two stacked lines: along upper left to right,
// back along lower right to left.
func band(lower, upper []int, maxN int) string {
	x := func(i int) float64 { return chartW * float64(i) / float64(len(upper)-1) }
	y := func(n int) float64 { return chartH - chartH*float64(n)/float64(max(maxN, 1)) }
	var b strings.Builder
	for i, n := range upper {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(n))
	}
	for i := len(lower) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(lower[i]))
	}
	return strings.TrimSpace(b.String())
}

// bar is a horizontal bar of n against total, in percent of its width.
type bar struct{ Width float64 }

func newBar(n, total int) bar {
	if total <= 0 {
		return bar{}
	}
	return bar{Width: 100 * float64(n) / float64(total)}
}

// stageBar is one stage's devices as consecutive segments, in percent of
// the bar: succeeded, failed, in progress, waiting.
type stageBar struct{ Segments []segment }

type segment struct {
	Class string
	X, W  float64
	N     int
}

func newStageBar(s fleet.StageCount) stageBar {
	classes := [4]string{"succeeded", "failed", "in-progress", "waiting"}
	parts := [4]int{s.Succeeded, s.Failed, s.InProgress, s.Waiting}
	total := parts[0] + parts[1] + parts[2] + parts[3]
	var b stageBar
	x := 0.0
	for i, n := range parts {
		if n == 0 || total == 0 {
			continue
		}
		w := 100 * float64(n) / float64(total)
		b.Segments = append(b.Segments, segment{Class: classes[i], X: x, W: w, N: n})
		x += w
	}
	return b
}
