package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// compareInstall is measurement 1: a fresh install from the repository against
// the shell pipeline on the whole file as one zstd stream, interleaved, both
// from the bench's nginx.
func (b *bench) compareInstall(size int64, rounds int) error {
	name := fmt.Sprintf("full%d", size>>20)
	src := filepath.Join(b.dir, "model-"+name)
	tensors := 64
	if err := writeModel(src, size/int64(tensors), seedsFrom(1, tensors)); err != nil {
		return err
	}
	if _, err := b.publish(src, name, "v1"); err != nil {
		return err
	}
	zst := filepath.Join(b.dir, name+".zst")
	if out, err := exec.Command("zstd", "-q", "-3", "-f", "-o", zst, filepath.Join(src, modelFile)).CombinedOutput(); err != nil {
		return fmt.Errorf("zstd: %v %s", err, out)
	}
	defer os.Remove(zst)
	os.RemoveAll(src)
	fmt.Printf("== 1. install of a %d MiB model from a loopback nginx repo vs curl | zstd -d | tee FILE | sha256sum; sync (%d interleaved rounds)\n", size>>20, rounds)
	var ours, shell []time.Duration
	var peak int64
	var reqs int64
	for r := range rounds {
		state := filepath.Join(b.dir, fmt.Sprintf("state-%d", r))
		var d time.Duration
		var rss int64
		t, err := b.web.measure(func() error {
			var err error
			d, rss, err = b.install(name, state)
			return err
		})
		if err != nil {
			return err
		}
		os.RemoveAll(state)
		out := filepath.Join(b.dir, "pipeline.out")
		ds, err := b.pipeline(b.url+"/"+name+".zst", out)
		if err != nil {
			return err
		}
		os.Remove(out)
		ours, shell = append(ours, d), append(shell, ds)
		peak, reqs = max(peak, rss), t.Requests
		fmt.Printf("   round %d: modelslot %6.2fs (%.2f GB/s, peak RSS %d MiB, %d requests)   pipeline %6.2fs (%.2f GB/s)\n",
			r+1, d.Seconds(), gbps(size, d), rss>>20, t.Requests, ds.Seconds(), gbps(size, ds))
	}
	mo, ms := median(ours), median(shell)
	fmt.Printf("   median: modelslot %.2fs, pipeline %.2fs -> modelslot is %.2fx the pipeline's speed (goal >= 3x); peak RSS %d MiB (goal <= 64 MiB); %d requests\n",
		mo.Seconds(), ms.Seconds(), ms.Seconds()/mo.Seconds(), peak>>20, reqs)
	return nil
}

func gbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e9 }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
