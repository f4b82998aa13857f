package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// deltaRow is one line of the delta table: the same pair of model versions
// updated by modelslot (v1 installed in a slot, v2 installed from the
// repository), casync and zsync (seeded with v1's files), all through the
// bench's nginx, counted from its access log.
type deltaRow struct {
	name     string
	changed  int64
	modelsl  result
	baseline map[string]result // by tool name
}

// result is one tool's traffic for a case, or why there is none.
type result struct {
	traffic
	err error
}

// deltaTable is measurement 2: every delta case at scale mib (the issue's
// "128 MiB" file), printed as a table to w.
func (b *bench) deltaTable(w io.Writer, mib int64) ([]deltaRow, error) {
	fmt.Fprintf(w, "== 2. delta: bytes on the wire and requests for the same v1 -> v2, from nginx's access log (scale: %d MiB for the issue's 128 MiB; random tensors)\n", mib)
	var rows []deltaRow
	for i, c := range deltaCases {
		row, err := b.deltaCase(fmt.Sprintf("delta%d", i), c, mib<<20)
		if err != nil {
			return rows, fmt.Errorf("delta case %q: %w", c.name, err)
		}
		rows = append(rows, row)
	}
	printDeltaTable(w, rows)
	return rows, nil
}

func (b *bench) deltaCase(model string, c deltaCase, s int64) (deltaRow, error) {
	dir := filepath.Join(b.dir, model)
	defer os.RemoveAll(dir)
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	changed, err := c.build(s, v1, v2)
	if err != nil {
		return deltaRow{}, err
	}
	row := deltaRow{name: c.name, changed: changed, baseline: map[string]result{}}
	if _, err := b.publish(v1, model, "v1"); err != nil {
		return row, err
	}
	state := filepath.Join(dir, "state")
	if _, _, err := b.install(model, state); err != nil {
		return row, err
	}
	if _, err := b.publish(v2, model, "v2"); err != nil {
		return row, err
	}
	row.modelsl.traffic, row.modelsl.err = b.web.measure(func() error {
		_, _, err := b.install(model, state)
		return err
	})
	if row.modelsl.err != nil {
		return row, row.modelsl.err
	}
	for _, t := range baselines {
		start := time.Now()
		tr, err := b.runBaseline(t, model, v1, v2)
		row.baseline[t.name] = result{tr, err}
		if err != nil && !errors.Is(err, errTimeout) {
			// A tool that ran but failed is reported in the table; say why here.
			fmt.Fprintf(os.Stderr, "delta %q: %s failed after %s: %v\n", c.name, t.name, time.Since(start).Round(time.Second), err)
		}
	}
	return row, nil
}

// tableHeader is the delta table's header row.
var tableHeader = []string{"case", "changed", "modelslot MB", "req", "casync MB", "req", "zsync MB", "req", "modelslot/casync"}

func printDeltaTable(w io.Writer, rows []deltaRow) {
	line := func(cells []string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	line(tableHeader)
	sep := make([]string, len(tableHeader))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	goalBytes, goalReqs := 0, 0
	for _, r := range rows {
		cells := []string{r.name, size(r.changed)}
		cells = append(cells, r.modelsl.cells()...)
		for _, t := range baselines {
			cells = append(cells, r.baseline[t.name].cells()...)
		}
		ratio := "-"
		if cs := r.baseline["casync"]; cs.err == nil && cs.Bytes > 0 && r.modelsl.err == nil {
			ratio = fmt.Sprintf("%.2fx", float64(r.modelsl.Bytes)/float64(cs.Bytes))
			if r.modelsl.Bytes <= cs.Bytes {
				goalBytes++
			}
			if r.modelsl.Requests < cs.Requests {
				goalReqs++
			}
		}
		line(append(cells, ratio))
	}
	fmt.Fprintf(w, "   goal: modelslot <= casync's bytes in every case (%d of %d), with fewer requests (%d of %d)\n",
		goalBytes, len(rows), goalReqs, len(rows))
}

func (r result) cells() []string {
	switch {
	case errors.Is(r.err, errTimeout):
		return []string{"no end", "-"}
	case r.err != nil:
		return []string{"failed", "-"}
	}
	return []string{fmt.Sprintf("%.2f", float64(r.Bytes)/1e6), fmt.Sprint(r.Requests)}
}

// size prints a byte count as the table does: B, KB or MB (decimal).
func size(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}
