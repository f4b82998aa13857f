// Command install is the `make bench` program of issues 3 and 13. It
// measures, side by side in one run, everything served by one loopback nginx
// and counted from its access log:
//
//  1. installing a model (1 GiB and 4 GiB) from the repository, against the
//     shell pipeline `curl | zstd -d | tee FILE | sha256sum; sync` on the same
//     content, in interleaved rounds (the VM drifts; compare ratios, not
//     times), with the install's peak RSS;
//  2. the delta table: bytes on the wire and requests for the same v1 -> v2
//     pairs (opaque files, GGUF, safetensors, config only, a full fine-tune)
//     for modelslot, casync and zsync;
//  3. the installer's peak RSS for 512 MiB and 2 GiB models;
//  4. the index figures of a model of >100k chunks (7.5 GiB of distinct
//     data): manifest and index size against the model's, peak RSS.
//
// Each modelslot install runs in a child process (this binary with -child), so
// its RSS and start-up are measured like the pipeline's. Run it with
// `go run ./bench/install` (flags below; a smoke run of everything at small
// sizes in a few minutes: -smoke;
// MODELSLOT_BENCH_CPUPROFILE=FILE profiles the child installs).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

func main() {
	var (
		child     = flag.Bool("child", false, "internal: install as a child process")
		sizes     = flag.String("size", "1024,4096", "model sizes in MiB for the install comparison, comma-separated")
		rounds    = flag.Int("rounds", 3, "interleaved rounds")
		work      = flag.String("work", "/var/tmp", "directory for the repository and state (~30 GiB free for the defaults)")
		deltaMiB  = flag.Int64("delta-mib", 128, "scale of the delta cases: the size of the issue's 128 MiB file")
		skipRSS   = flag.Bool("skip-rss", false, "skip measurement 3 (peak RSS at 512 MiB and 2 GiB)")
		indexMiB  = flag.Int64("index-mib", 7680, "model size in MiB for the index figures (7.5 GiB: ~125k chunks of format 2's ~63 KiB)")
		skipIndex = flag.Bool("skip-index", false, "skip measurement 4 (index figures)")
		keep      = flag.Bool("keep", false, "keep the work directory (for debugging)")
		only      = flag.Int("only", 0, "run only measurement 1, 2, 3 or 4")
		smoke     = flag.Bool("smoke", false, "a quick run at small sizes (a few minutes): flags given explicitly still win")
	)
	flag.Parse()
	if *smoke {
		smallDefaults(map[string]string{"size": "64", "rounds": "1", "delta-mib": "8", "skip-rss": "true", "index-mib": "256"})
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if *child {
		if err := runChild(flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			os.Exit(1)
		}
		return
	}
	mibs, err := parseSizes(*sizes)
	if err != nil {
		die(err)
	}
	dir, err := os.MkdirTemp(*work, "modelslot-bench-install-")
	if err != nil {
		die(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("work directory:", dir)
	}
	b, err := newBench(dir)
	if err != nil {
		os.RemoveAll(dir) // die exits: the deferred removal would not run
		die(err)
	}
	defer b.close()
	run := func(n int) bool { return *only == 0 || *only == n }
	fatal := func(err error) {
		b.close()
		if !*keep {
			os.RemoveAll(dir)
		}
		die(err)
	}
	if run(1) {
		for _, mib := range mibs {
			if err := b.compareInstall(mib<<20, *rounds); err != nil {
				fatal(err)
			}
		}
	}
	if run(2) {
		if _, err := b.deltaTable(os.Stdout, *deltaMiB); err != nil {
			fatal(err)
		}
	}
	if run(3) && !*skipRSS {
		for _, mib := range []int64{512, 2048} {
			if err := b.peakRSS(mib << 20); err != nil {
				fatal(err)
			}
		}
	}
	if run(4) && !*skipIndex {
		if err := b.indexFigures(*indexMiB << 20); err != nil {
			fatal(err)
		}
	}
}

// smallDefaults sets the flags of the smoke run that were not given.
func smallDefaults(values map[string]string) {
	given := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, v := range values {
		if !given[name] {
			if err := flag.Set(name, v); err != nil {
				die(err)
			}
		}
	}
}

func parseSizes(s string) ([]int64, error) {
	var mibs []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-size %q: want MiB counts like 1024,4096", s)
		}
		mibs = append(mibs, n)
	}
	return mibs, nil
}

// die reports err and exits. Not log.Fatal: once slog.SetDefault has run, the
// log package writes through slog at INFO, which the WARN handler drops, and
// the bench would exit 1 without a word.
func die(err error) {
	fmt.Fprintln(os.Stderr, "bench/install:", err)
	os.Exit(1)
}
