package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// indexFigures is measurement 4: a model of size bytes of distinct random
// data (every chunk distinct, so the index has one entry per chunk), what the
// repository needs to describe it (the signed manifest and, for schema 2, the
// chunk index it pins) against the model's size, and the install child's
// peak RSS.
func (b *bench) indexFigures(size int64) error {
	const name = "index"
	src := filepath.Join(b.dir, "model-index")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	start := time.Now()
	if err := writeRandomFile(filepath.Join(src, opaqueFile), size, 77); err != nil {
		return err
	}
	gen := time.Since(start)
	start = time.Now()
	res, err := b.publish(src, name, "v1")
	if err != nil {
		return err
	}
	pub := time.Since(start)
	os.RemoveAll(src)
	st, err := os.Stat(res.ManifestFile)
	if err != nil {
		return err
	}
	manifest, index, chunks := st.Size(), int64(0), int64(res.Chunks)
	format := "format 1: chunks inline in the manifest"
	if ix := res.Manifest.Index; ix != nil {
		index, chunks = ix.Size, ix.Chunks
		format = fmt.Sprintf("format %d: index pinned by the manifest", res.Manifest.Schema)
	}
	state := filepath.Join(b.dir, "state-"+name)
	defer os.RemoveAll(state)
	d, rss, err := b.install(name, state)
	if err != nil {
		return err
	}
	fmt.Printf("== 4. index of a %.2f GiB model of distinct random data (%s; generated in %.0fs, published in %.0fs)\n",
		float64(size)/(1<<30), format, gen.Seconds(), pub.Seconds())
	enough := ""
	if chunks < 100_000 {
		enough = " (fewer than the 100k the goal is about: a larger -index-mib, or this format's chunks are larger)"
	}
	fmt.Printf("   chunks %d%s; manifest %.1f KB, index %.1f KB: %.4f%% of the model (goal <= 0.2%%)\n",
		chunks, enough, float64(manifest)/1e3, float64(index)/1e3, 100*float64(manifest+index)/float64(size))
	fmt.Printf("   install: %.1fs, peak RSS %d MiB (goal <= 64 MiB)\n", d.Seconds(), rss>>20)
	return nil
}
