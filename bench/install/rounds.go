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
// the shell pipeline on the whole file as one zstd stream, interleaved.
func (b *bench) compareInstall(size int64, rounds int) error {
	src := filepath.Join(b.dir, "model-full")
	tensors := 64
	if err := writeModel(src, size/int64(tensors), seedsFrom(1, tensors)); err != nil {
		return err
	}
	if _, err := b.publish(src, "full", "v1"); err != nil {
		return err
	}
	zst := filepath.Join(b.dir, "whole.zst")
	if out, err := exec.Command("zstd", "-q", "-3", "-f", "-o", zst, filepath.Join(src, modelFile)).CombinedOutput(); err != nil {
		return fmt.Errorf("zstd: %v %s", err, out)
	}
	os.RemoveAll(src)
	fmt.Printf("== 1. install of a %d MiB model from a loopback repo vs curl | zstd -d | tee FILE | sha256sum; sync (%d interleaved rounds)\n", size>>20, rounds)
	var ours, shell []time.Duration
	for r := range rounds {
		state := filepath.Join(b.dir, fmt.Sprintf("state-%d", r))
		d, rss, err := b.install("full", state)
		if err != nil {
			return err
		}
		os.RemoveAll(state)
		out := filepath.Join(b.dir, "pipeline.out")
		ds, err := b.pipeline(b.url+"/whole.zst", out)
		if err != nil {
			return err
		}
		os.Remove(out)
		ours, shell = append(ours, d), append(shell, ds)
		fmt.Printf("   round %d: modelslot %6.2fs (%.2f GB/s, peak RSS %d MiB)   pipeline %6.2fs (%.2f GB/s)\n",
			r+1, d.Seconds(), gbps(size, d), rss>>20, ds.Seconds(), gbps(size, ds))
	}
	mo, ms := median(ours), median(shell)
	fmt.Printf("   median: modelslot %.2fs, pipeline %.2fs -> modelslot is %.2fx the pipeline's speed (goal >= 1.5x)\n",
		mo.Seconds(), ms.Seconds(), ms.Seconds()/mo.Seconds())
	return nil
}

func gbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e9 }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
