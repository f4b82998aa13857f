package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// store writes chunks into <repo>/chunks. A chunk already there is not written
// again: its address is its content, so the file can only hold the same bytes.
type store struct {
	repo    string
	level   zstd.EncoderLevel
	workers int
	encs    sync.Pool

	mu      sync.Mutex
	entries map[string]*entry // by sha256: each chunk stored once per run
	dirs    map[string]bool   // shard directories to fsync before the manifest
	stats
}

type stats struct {
	chunks       int
	written      int
	writtenBytes int64
}

// entry is one chunk being stored; done closes when csize or err is set.
type entry struct {
	done  chan struct{}
	csize int64
	err   error
}

func newStore(repo string, level zstd.EncoderLevel, workers int) *store {
	s := &store{repo: repo, level: level, workers: workers, entries: map[string]*entry{}, dirs: map[string]bool{}}
	s.encs.New = func() any {
		// One goroutine per encoder: the parallelism is across chunks, and a
		// single-threaded encoder keeps memory per worker small and predictable.
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		return e
	}
	return s
}

// put stores data under sum and returns its compressed size.
func (s *store) put(sum string, data []byte) (int64, error) {
	s.mu.Lock()
	e, ok := s.entries[sum]
	if !ok {
		e = &entry{done: make(chan struct{})}
		s.entries[sum] = e
		s.chunks++
	}
	s.mu.Unlock()
	if ok {
		<-e.done
		return e.csize, e.err
	}
	e.csize, e.err = s.write(sum, data)
	close(e.done)
	return e.csize, e.err
}

func (s *store) write(sum string, data []byte) (int64, error) {
	name := filepath.Join(s.repo, filepath.FromSlash(verify.ChunkPath(sum)))
	if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return fi.Size(), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("store chunk %s: %w", sum, err)
	}
	enc := s.encs.Get().(*zstd.Encoder)
	z := enc.EncodeAll(data, make([]byte, 0, len(data)/2))
	s.encs.Put(enc)
	if len(z) > verify.MaxChunkSize {
		return 0, fmt.Errorf("store chunk %s: compressed to %d bytes, more than a device accepts (%d)", sum, len(z), verify.MaxChunkSize)
	}
	if err := s.writeFile(name, z); err != nil {
		return 0, fmt.Errorf("store chunk %s: %w", sum, err)
	}
	s.mu.Lock()
	s.written++
	s.writtenBytes += int64(len(z))
	s.mu.Unlock()
	return int64(len(z)), nil
}

// writeFile writes temp → fsync → rename. The shard directory is synced once,
// in sync, rather than after each of thousands of chunks.
func (s *store) writeFile(name string, data []byte) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = durable.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	s.mu.Lock()
	s.dirs[dir] = true
	s.mu.Unlock()
	return err
}

// sync makes every chunk written so far durable, before a manifest names them.
func (s *store) sync() error {
	s.dirs[filepath.Join(s.repo, "chunks")] = true
	for dir := range s.dirs {
		if err := durable.SyncDir(dir); err != nil {
			return err
		}
	}
	return durable.SyncDir(s.repo)
}
