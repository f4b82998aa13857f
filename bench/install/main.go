// Command install is the `make bench` program of issue 3. It measures, side by
// side in one run:
//
//  1. installing a model (default 1 GiB) from a loopback repository, against the
//     shell pipeline `curl | zstd -d | tee FILE | sha256sum; sync` on the same
//     content, in interleaved rounds (the VM drifts; compare ratios, not times);
//  2. bytes on the wire for an update in which 6 of 64 equal tensors changed,
//     against the changed bytes;
//  3. the installer's peak RSS for 512 MiB and 2 GiB models.
//
// Each modelslot install runs in a child process (this binary with -child), so
// its RSS and start-up are measured like the pipeline's. Run it with
// `go run ./bench/install` (flags: -size, -rounds, -work, -only, -skip-rss;
// MODELSLOT_BENCH_CPUPROFILE=FILE profiles the child installs).
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
)

func main() {
	var (
		child   = flag.Bool("child", false, "internal: install as a child process")
		sizeMiB = flag.Int("size", 1024, "model size in MiB for the install comparison")
		rounds  = flag.Int("rounds", 3, "interleaved rounds")
		work    = flag.String("work", "/var/tmp", "directory for the repository and state (several GiB)")
		skipRSS = flag.Bool("skip-rss", false, "skip the peak RSS runs (512 MiB and 2 GiB)")
		keep    = flag.Bool("keep", false, "keep the work directory (for debugging)")
		only    = flag.Int("only", 0, "run only measurement 1, 2 or 3")
	)
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if *child {
		if err := runChild(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			os.Exit(1)
		}
		return
	}
	dir, err := os.MkdirTemp(*work, "modelslot-bench-install-")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("work directory:", dir)
	}
	b, err := newBench(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer b.close()
	run := func(n int) bool { return *only == 0 || *only == n }
	if run(1) {
		if err := b.compareInstall(int64(*sizeMiB)<<20, *rounds); err != nil {
			log.Fatal(err)
		}
	}
	if run(2) {
		if err := b.delta(); err != nil {
			log.Fatal(err)
		}
	}
	if run(3) && !*skipRSS {
		for _, mib := range []int64{512, 2048} {
			if err := b.peakRSS(mib << 20); err != nil {
				log.Fatal(err)
			}
		}
	}
}
