package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// store turns the chunks of a version, in index order, into its index entries
// and locations: a chunk the repository already holds (its catalog says
// where, and its bytes there are the ones being published) is referenced
// where it is; a new chunk is compressed and appended to the pack being
// written, so a version's new chunks are adjacent, in order of first use.
//
// Three stages: the caller hashes chunks in order (add); workers compress new
// chunks and check known ones; one writer takes them back in order and
// appends to packs. At most queueDepth chunks are in memory at once.
type store struct {
	repo    string
	workers int
	encs    sync.Pool
	decs    sync.Pool
	known   map[chunkindex.Digest]known

	// The caller's goroutine (add):
	seen    map[chunkindex.Digest]int64 // ordinal of each chunk's first use in this version
	files   [][]chunkindex.Entry
	entries int64

	// The writer's goroutine:
	locs    []chunkindex.Loc
	packs   []chunkindex.Digest // the version's pack table
	packIdx map[chunkindex.Digest]uint32
	pw      packWriter
	cur     uint32 // table index of the pack being written

	queue   chan *job // every chunk, in order, to the writer
	work    chan *job // chunks that need a worker
	pending sync.WaitGroup
	done    chan struct{} // the writer returned

	mu   sync.Mutex
	err  error
	dirs map[string]bool
	stats
}

type stats struct {
	chunks       int   // distinct chunks of the version
	written      int   // chunks written now
	writtenBytes int64 // their compressed bytes
	newBytes     int64 // their uncompressed bytes
	newPacks     int   // packs written now
}

// job is one chunk on its way through the stages.
type job struct {
	sum  chunkindex.Digest
	data []byte
	dup  int64  // ordinal of the first use of the same chunk, or -1
	cand *known // where a catalog says the repository has it
	z    []byte // compressed, when it must be written
	err  error
	done chan struct{}
}

func newStore(ctx context.Context, repo string, level zstd.EncoderLevel, workers int, packSize int64, cat map[chunkindex.Digest]known) *store {
	s := &store{repo: repo, workers: workers, known: cat, seen: map[chunkindex.Digest]int64{},
		packIdx: map[chunkindex.Digest]uint32{}, dirs: map[string]bool{},
		queue: make(chan *job, 4*workers), work: make(chan *job, workers), done: make(chan struct{})}
	s.pw = packWriter{repo: repo, limit: packSize, onDir: s.dirty}
	s.encs.New = func() any {
		// One goroutine per encoder: the parallelism is across chunks, and a
		// single-threaded encoder keeps memory per worker small and predictable.
		// Single segment: every frame then declares its content size, which a
		// device checks before it decompresses (without it, klauspost leaves
		// the size out of frames under 256 bytes).
		// No frame checksum: every chunk is checked against its sha256 after
		// it is decompressed, so four bytes a frame would buy nothing.
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true),
			zstd.WithSingleSegment(true), zstd.WithEncoderCRC(false))
		return e
	}
	s.decs.New = func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(verify.MaxChunkSize))
		return d
	}
	for range workers {
		s.pending.Add(1)
		go s.worker(ctx)
	}
	go s.writer()
	return s
}

// beginFile starts the index entries of the next file of the manifest.
func (s *store) beginFile() { s.files = append(s.files, nil) }

// add takes the next chunk of the current file. data is copied: the chunker
// reuses its buffer.
func (s *store) add(data []byte) error {
	if err := s.failure(); err != nil {
		return err
	}
	j := &job{sum: sha256.Sum256(data), dup: -1, done: make(chan struct{})}
	f := &s.files[len(s.files)-1]
	*f = append(*f, chunkindex.Entry{Sum: j.sum, Size: uint32(len(data))})
	ordinal := s.entries
	s.entries++
	if first, ok := s.seen[j.sum]; ok {
		j.dup = first
		close(j.done)
		s.queue <- j
		return nil
	}
	s.seen[j.sum] = ordinal
	j.data = append([]byte(nil), data...)
	if k, ok := s.known[j.sum]; ok && int(k.size) == len(data) {
		j.cand = &k
	}
	s.queue <- j
	s.work <- j
	return nil
}

// worker checks a known chunk against the repository's copy, or compresses
// a new one (and a known one whose copy is not what the catalog says).
func (s *store) worker(ctx context.Context) {
	defer s.pending.Done()
	for j := range s.work {
		if err := ctx.Err(); err != nil {
			j.err = err
		} else if s.failure() == nil {
			j.err = s.prepare(j)
		}
		close(j.done)
	}
}

func (s *store) prepare(j *job) error {
	if j.cand != nil {
		err := s.verifyKnown(j)
		if err == nil {
			return nil
		}
		slog.Warn("a stored chunk is not what its pack's catalog says; storing it again",
			"chunk", j.sum.String(), "pack", j.cand.pack.String(), "err", err)
		j.cand = nil
	}
	enc := s.encs.Get().(*zstd.Encoder)
	j.z = enc.EncodeAll(j.data, make([]byte, 0, len(j.data)/2+64))
	s.encs.Put(enc)
	if len(j.z) >= len(j.data) {
		// zstd does not help (random or already compressed data): the chunk
		// is stored plain, without a frame's bytes or a device's decoding
		// (chunkindex.Plain).
		j.z = j.data
	}
	if len(j.z) > verify.MaxChunkSize {
		return fmt.Errorf("chunk %s: compressed to %d bytes, more than a device accepts (%d)", j.sum, len(j.z), verify.MaxChunkSize)
	}
	return nil
}

// verifyKnown reads the chunk where the catalog says it is, decompresses it
// and compares it with the bytes being published: a catalog is never trusted
// on its word (docs/repository.md § Dedup).
func (s *store) verifyKnown(j *job) error {
	f, err := os.Open(filepath.Join(s.repo, filepath.FromSlash(chunkindex.PackPath(j.cand.pack))))
	if err != nil {
		return err
	}
	defer f.Close()
	z := make([]byte, j.cand.csize)
	if _, err := f.ReadAt(z, int64(j.cand.offset)); err != nil {
		return err
	}
	got := z
	if !chunkindex.Plain(j.cand.csize, j.cand.size) {
		dec := s.decs.Get().(*zstd.Decoder)
		defer s.decs.Put(dec)
		if got, err = dec.DecodeAll(z, make([]byte, 0, len(j.data))); err != nil {
			return err
		}
	}
	if !bytes.Equal(got, j.data) {
		return fmt.Errorf("its %d bytes at %d decompress to other data", j.cand.csize, j.cand.offset)
	}
	return nil
}

// writer takes the chunks back in index order and gives each its location.
func (s *store) writer() {
	defer close(s.done)
	for j := range s.queue {
		<-j.done
		if s.failure() != nil {
			continue // drain: the run is lost anyway
		}
		if err := s.place(j); err != nil {
			s.fail(err)
		}
		j.data, j.z = nil, nil
	}
}

func (s *store) place(j *job) error {
	switch {
	case j.err != nil:
		return j.err
	case j.dup >= 0:
		s.locs = append(s.locs, s.locs[j.dup])
		return nil
	case j.cand != nil:
		s.locs = append(s.locs, chunkindex.Loc{Pack: s.table(j.cand.pack), CSize: j.cand.csize, Offset: j.cand.offset})
		return nil
	}
	if !s.pw.open() {
		s.cur = uint32(len(s.packs))
		s.packs = append(s.packs, chunkindex.Digest{}) // named when the pack is finished
	}
	off, err := s.pw.add(j.sum, len(j.data), j.z)
	if err != nil {
		return err
	}
	s.locs = append(s.locs, chunkindex.Loc{Pack: s.cur, CSize: uint32(len(j.z)), Offset: off})
	s.mu.Lock()
	s.written++
	s.writtenBytes += int64(len(j.z))
	s.newBytes += int64(len(j.data))
	s.mu.Unlock()
	if s.pw.full() {
		return s.finishPack()
	}
	return nil
}

// table returns the index of an existing pack in the version's pack table.
func (s *store) table(pack chunkindex.Digest) uint32 {
	i, ok := s.packIdx[pack]
	if !ok {
		i = uint32(len(s.packs))
		s.packs = append(s.packs, pack)
		s.packIdx[pack] = i
	}
	return i
}

func (s *store) finishPack() error {
	sum, err := s.pw.finish()
	if err != nil {
		return err
	}
	s.packs[s.cur] = sum
	s.mu.Lock()
	s.newPacks++
	s.mu.Unlock()
	return nil
}

// close waits for every chunk, finishes the last pack and makes every pack
// durable: after it returns nil, the index may name them.
func (s *store) close() error {
	close(s.work)
	s.pending.Wait()
	close(s.queue)
	<-s.done
	if err := s.failure(); err != nil {
		s.pw.abort()
		return err
	}
	if s.pw.open() {
		if err := s.finishPack(); err != nil {
			return err
		}
	}
	s.chunks = len(s.seen)
	s.dirty(s.repo)
	for dir := range s.dirs {
		if err := durable.SyncDir(dir); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) dirty(dir string) {
	s.mu.Lock()
	s.dirs[dir] = true
	s.mu.Unlock()
}

func (s *store) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *store) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
