package fetch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Downloaded chunks are decoded straight into large aligned blocks, and each
// block is written by a goroutine of its own, its aligned middle with
// O_DIRECT where the filesystem has it: writing fresh page cache is what
// bounds a full install (bench-baselines.md). A download worker owns two
// blocks: it decodes into one while the writer writes the other, so neither
// waits for the other (a synchronous O_DIRECT write of a block takes as long
// as decoding a good part of the next one). A block goes to the writer when
// it is full, when the next chunk does not continue it in its file, when its
// first chunk is blockLinger old, when no chunk follows within blockIdle,
// and when a run's response ends or fails, so a slow or stalled server
// leaves nothing verified unwritten (and unjournaled) for long.
const (
	blockSize   = 4 << 20 // a write's most bytes
	directAlign = 4096    // O_DIRECT's offset, length and memory alignment
	// blockBudget bounds all the workers' blocks together: with more
	// workers than the default ([download] workers), blocks get smaller
	// (down to minBlockSize), so peak RSS stays within the device's budget.
	// At 32 MiB a 20 GiB model of 330k chunks peaked at 65 MiB; the default
	// 4 workers get 3 MiB blocks at 24.
	blockBudget  = 24 << 20
	minBlockSize = 256 << 10
	// blocksPerWorker is one block being filled and one being written.
	blocksPerWorker = 2
	blockLinger     = 250 * time.Millisecond
	blockIdle       = 20 * time.Millisecond
)

// stagedFiles are a download's staged files, open twice: buffered, and with
// O_DIRECT where the filesystem allows it (nil where not).
type stagedFiles struct {
	out    []*os.File
	direct []*os.File
}

func openDirect(out []*os.File) *stagedFiles {
	sf := &stagedFiles{out: out, direct: make([]*os.File, len(out))}
	for i, f := range out {
		if f == nil {
			continue
		}
		// Reopened through its descriptor, never its name: the same inode,
		// whatever has its path by now (#12).
		if fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0); err == nil {
			sf.direct[i] = os.NewFile(uintptr(fd), f.Name()) // tmpfs and some others refuse: page cache then
		}
	}
	return sf
}

func (sf *stagedFiles) close() { closeAll(sf.direct) }

// block is verified chunks that follow each other in one staged file, in
// memory aligned for O_DIRECT, or one chunk larger than a block (big).
type block struct {
	mem   []byte // bsize + directAlign, page-aligned (mmap)
	file  int
	start int64 // file offset of the block's first byte
	shift int   // where that byte is in mem: start's offset in its page
	n     int
	ords  []int64
	born  time.Time // when its first chunk came
	big   []byte    // from getBuf; the writer gives it back
}

func (b *block) reset() { b.n, b.ords, b.big = 0, b.ords[:0], nil }

// chunkWriter is one download worker's blocks and their writer goroutine.
// The worker calls slot, then done (or nothing, if the chunk failed), and
// flush; only the writer goroutine touches the files and the journal.
type chunkWriter struct {
	sf      *stagedFiles
	journal *os.File
	bsize   int         // a block's most bytes (blockSizeFor)
	free    chan *block // to fill
	full    chan *block // to write
	exited  chan struct{}
	idle    *time.Timer // hands a block over when no chunk follows
	cmu     sync.Mutex  // cur and busy: the worker and the idle timer
	cur     *block      // being filled by the worker
	busy    bool        // a chunk is being decoded into cur
	mems    [][]byte
	line    []byte // the writer's journal line buffer

	mu  sync.Mutex
	err error
}

// blockSizeFor is the block size for one of workers download workers.
func blockSizeFor(workers int) int {
	n := blockBudget / (blocksPerWorker * max(workers, 1)) / directAlign * directAlign
	return min(max(n, minBlockSize), blockSize)
}

// newChunkWriter is the writer of one of workers download workers.
func newChunkWriter(sf *stagedFiles, journal *os.File, workers int) (*chunkWriter, error) {
	w := &chunkWriter{sf: sf, journal: journal, bsize: blockSizeFor(workers), free: make(chan *block, blocksPerWorker),
		full: make(chan *block, blocksPerWorker), exited: make(chan struct{})}
	for range blocksPerWorker {
		// Outside the Go heap: not scanned, not counted against the memory
		// limit (so no collections for it), and page-aligned.
		mem, err := unix.Mmap(-1, 0, w.bsize+directAlign, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			w.unmap()
			return nil, fmt.Errorf("staging: memory for a write block: %w", err)
		}
		w.mems = append(w.mems, mem)
		w.free <- &block{mem: mem}
	}
	w.idle = time.AfterFunc(time.Hour, w.idleFlush)
	w.idle.Stop()
	go w.loop()
	return w, nil
}

func (w *chunkWriter) unmap() {
	for _, m := range w.mems {
		unix.Munmap(m)
	}
	w.mems = nil
}

// slot returns where to decode a chunk of size bytes that goes at off in
// staged file file: the room after the current block's last chunk when it
// continues there, else at the start of a fresh block. The chunk is part of
// the block only once done is called; a chunk larger than a block is given
// a buffer of its own. It fails once a write has failed.
func (w *chunkWriter) slot(file int, off int64, size int) ([]byte, error) {
	if err := w.failed(); err != nil {
		return nil, err
	}
	w.cmu.Lock()
	w.busy = true // the idle timer leaves the block alone until done or flush
	b := w.cur
	if b != nil && b.n > 0 && (file != b.file || off != b.start+int64(b.n) || b.n+size > w.bsize || size > w.bsize) {
		w.send()
		b = nil
	}
	w.cmu.Unlock()
	if b == nil {
		b = <-w.free
		w.cmu.Lock()
		w.cur = b
		w.cmu.Unlock()
	}
	if b.big != nil { // a big chunk that failed its check
		putBuf(b.big)
		b.big = nil
	}
	if size > w.bsize { // allowed by the format, rare with publish's chunker
		b.file, b.start, b.big = file, off, getBuf(int64(size))
		return b.big[:0:size], nil
	}
	if b.n == 0 {
		b.file, b.start, b.shift, b.born = file, off, int(off%directAlign), time.Now()
	}
	at := b.shift + b.n
	return b.mem[at : at : at+size], nil
}

// done adds the chunk just decoded (and verified) into slot's room to the
// block, and hands the block to the writer when it is full, holds a big
// chunk, or is blockLinger old; else the idle timer hands it over if no
// other chunk follows within blockIdle (a stalled server).
func (w *chunkWriter) done(ord int64, size int) {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	w.busy = false
	b := w.cur
	b.ords = append(b.ords, ord)
	if b.big != nil {
		b.big = b.big[:size]
		w.send()
		return
	}
	b.n += size
	if b.n == w.bsize || time.Since(b.born) >= blockLinger {
		w.send()
		return
	}
	w.idle.Reset(blockIdle)
}

// idleFlush runs on the idle timer: no chunk came for blockIdle.
func (w *chunkWriter) idleFlush() {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	if !w.busy {
		w.flushLocked()
	}
}

// flush hands the current block, if it holds anything, to the writer.
func (w *chunkWriter) flush() {
	w.cmu.Lock()
	defer w.cmu.Unlock()
	w.busy = false
	w.flushLocked()
}

func (w *chunkWriter) flushLocked() {
	if w.cur != nil && len(w.cur.ords) > 0 {
		w.send()
	}
}

// send hands the current block to the writer (the channel has room for
// every block: it never waits). Called with cmu held.
func (w *chunkWriter) send() {
	b := w.cur
	w.cur = nil
	if len(b.ords) == 0 { // a big chunk's buffer that failed its check
		putBuf(b.big)
		b.reset()
		w.free <- b
		return
	}
	w.full <- b
}

// close writes what is left, frees the blocks and returns the first write
// error.
func (w *chunkWriter) close() error {
	w.idle.Stop()
	w.flush()
	w.cmu.Lock()
	if w.cur != nil {
		putBuf(w.cur.big)
		w.cur.reset()
		w.cur = nil
	}
	w.cmu.Unlock()
	close(w.full)
	<-w.exited
	w.unmap()
	return w.failed()
}

func (w *chunkWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *chunkWriter) loop() {
	defer close(w.exited)
	for b := range w.full {
		err := w.failed()
		if err == nil {
			err = w.write(b)
		}
		w.record(b, err)
		putBuf(b.big)
		b.reset()
		w.free <- b
	}
}

// record journals the block's chunks after a successful write, or keeps
// the first error.
func (w *chunkWriter) record(b *block, err error) {
	if err == nil {
		// One append for the block: its chunks' ordinals mostly follow
		// each other, so a line or two, not one write per chunk.
		w.line = appendRanges(w.line[:0], b.ords)
		_, err = w.journal.Write(w.line)
	}
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("staging: %w", err)
		}
		w.mu.Unlock()
	}
}

// write writes the block — its aligned middle with O_DIRECT when it can; a
// big chunk as it is, through the page cache.
func (w *chunkWriter) write(b *block) error {
	out, direct := w.sf.out[b.file], w.sf.direct[b.file]
	if b.big != nil {
		_, err := out.WriteAt(b.big, b.start)
		return err
	}
	data := b.mem[b.shift : b.shift+b.n]
	head := min(int((directAlign-b.start%directAlign)%directAlign), b.n)
	mid := (b.n - head) / directAlign * directAlign
	if direct == nil || mid == 0 {
		_, err := out.WriteAt(data, b.start)
		return err
	}
	if _, err := out.WriteAt(data[:head], b.start); err != nil {
		return err
	}
	if _, err := direct.WriteAt(data[head:head+mid], b.start+int64(head)); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		if _, err := out.WriteAt(data[head:head+mid], b.start+int64(head)); err != nil {
			return err
		}
	}
	_, err := out.WriteAt(data[head+mid:], b.start+int64(head+mid))
	return err
}
