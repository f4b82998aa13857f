package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/demobench"
	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// benchSwaps is the number of link swaps per mode.
const benchSwaps = 10

// BenchmarkSwapToAnswer measures, under load, the time from a link swap to the
// first answer of the new version, and the requests failed meanwhile, for:
// in-process reload (the server follows the link), systemd restart with the
// server listening itself, and systemd restart with socket activation. It
// prints the three side by side. Run with -benchtime 1x; the systemd modes need
// root (a private systemd --user, see internal/systemdtest).
func BenchmarkSwapToAnswer(b *testing.B) {
	var runs []demobench.Run
	modes := []struct {
		name string
		run  func(b *testing.B, dev *demobench.Device) demobench.Run
	}{
		{"in-process reload", benchReload},
		{"systemd restart", func(b *testing.B, dev *demobench.Device) demobench.Run { return benchRestart(b, dev, false) }},
		{"systemd restart, socket activation", func(b *testing.B, dev *demobench.Device) demobench.Run { return benchRestart(b, dev, true) }},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			var r demobench.Run
			for b.Loop() {
				dev, err := demobench.NewDevice(b.TempDir(), models)
				if err != nil {
					b.Fatal(err)
				}
				r = m.run(b, dev)
			}
			b.ReportMetric(float64(r.Median().Microseconds())/1000, "ms-median/swap")
			b.ReportMetric(float64(r.Max().Microseconds())/1000, "ms-max/swap")
			b.ReportMetric(float64(r.Summary.Failed), "failed")
			b.ReportMetric(float64(r.Summary.OK+r.Summary.Failed), "requests")
			runs = append(runs, r)
		})
	}
	fmt.Println()
	demobench.Table(os.Stdout, runs)
}

func benchLoad(port int, dev *demobench.Device) demobench.Load {
	return demobench.Load{URL: fmt.Sprintf("http://127.0.0.1:%d/v1/infer", port), Workers: 4,
		Input: dev.Input, Expect: dev.Expect, Tolerance: 1e-4}
}

// benchReload runs the server as a plain child process that follows the link.
func benchReload(b *testing.B, dev *demobench.Device) demobench.Run {
	port := testutil.FreePort(b)
	cmd := exec.Command(demoBinary(b), "--link", dev.Link, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	load := benchLoad(port, dev)
	waitServing(b, load)
	r, err := demobench.Measure(context.Background(), "in-process reload (fsnotify)", load, dev, benchSwaps, nil)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// benchRestart runs the server under a private systemd manager and restarts
// the unit after each swap.
func benchRestart(b *testing.B, dev *demobench.Device, socket bool) demobench.Run {
	m := systemdtest.Start(b)
	port := testutil.FreePort(b)
	unitSpec{link: dev.Link, port: port, socket: socket, restart: "on-failure"}.install(b, m)
	load := benchLoad(port, dev)
	waitServing(b, load)
	mode := "systemd restart (--addr)"
	if socket {
		mode = "systemd restart, socket activation"
	}
	r, err := demobench.Measure(context.Background(), mode, load, dev, benchSwaps, restarter(dbusConn(b, m)))
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func waitServing(b *testing.B, load demobench.Load) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if resp, err := http.Post(load.URL, "application/json", bytes.NewReader(load.Input)); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, err := load.Check(string(body)); err == nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("server at %s never answered", load.URL)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
