package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// peakRSS is measurement 3: the installer's peak RSS for a model of size bytes.
func (b *bench) peakRSS(size int64) error {
	name := fmt.Sprintf("rss%d", size>>20)
	src := filepath.Join(b.dir, "model-"+name)
	tensors := int(size / (32 << 20))
	if err := writeModel(src, size/int64(tensors), seedsFrom(uint64(size), tensors)); err != nil {
		return err
	}
	if _, err := b.publish(src, name, "v1"); err != nil {
		return err
	}
	os.RemoveAll(src)
	state := filepath.Join(b.dir, "state-"+name)
	defer os.RemoveAll(state)
	d, rss, err := b.install(name, state)
	if err != nil {
		return err
	}
	fmt.Printf("== 3. peak RSS installing %d MiB: %d MiB (goal <= 64 MiB), %.2fs\n", size>>20, rss>>20, d.Seconds())
	return nil
}
