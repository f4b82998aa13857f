package fetch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Downloaded chunks are written by a goroutine of their own, which gathers
// the chunks that follow each other in a file into large blocks and writes
// their aligned middle with O_DIRECT where the filesystem has it: writing
// fresh page cache is what bounds a full install (bench-baselines.md), and
// the decoding goroutine goes on meanwhile. A block is written as soon as no
// further chunk is waiting, so a stalled server leaves nothing verified
// unwritten (and unjournaled) for long.
const (
	blockSize   = 2 << 20 // a write's most bytes
	directAlign = 4096    // O_DIRECT's offset, length and memory alignment
	writeQueue  = 8       // chunks waiting for the writer, per download worker
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

// wchunk is one verified chunk on its way to the writer.
type wchunk struct {
	file int
	off  int64
	data []byte // from getBuf; the writer gives it back
	ord  int64
}

// chunkWriter is one download worker's writer goroutine.
type chunkWriter struct {
	sf      *stagedFiles
	journal *os.File
	in      chan wchunk
	done    chan struct{}

	raw   []byte // blockSize + directAlign, aligned
	file  int
	start int64 // file offset of the block's first byte
	shift int   // where that byte is in raw: start's offset in its page
	n     int
	ords  []int64

	mu  sync.Mutex
	err error
}

func newChunkWriter(sf *stagedFiles, journal *os.File) *chunkWriter {
	w := &chunkWriter{sf: sf, journal: journal, in: make(chan wchunk, writeQueue), done: make(chan struct{}),
		raw: alignedBuf(blockSize + directAlign), file: -1}
	go w.loop()
	return w
}

// put hands over a verified chunk; it fails once a write has failed.
func (w *chunkWriter) put(c wchunk) error {
	if err := w.failed(); err != nil {
		putBuf(c.data)
		return err
	}
	w.in <- c
	return nil
}

// close writes what is left and returns the first write error.
func (w *chunkWriter) close() error {
	close(w.in)
	<-w.done
	return w.failed()
}

func (w *chunkWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *chunkWriter) loop() {
	defer close(w.done)
	for c := range w.in {
		if len(c.data) > blockSize { // allowed by the format, never cut by publish's chunker
			w.flush()
			w.file, w.start, w.n = c.file, c.off, 0
			w.big(c)
			continue
		}
		if w.n > 0 && (c.file != w.file || c.off != w.start+int64(w.n) || w.n+len(c.data) > blockSize) {
			w.flush()
		}
		if w.n == 0 {
			w.file, w.start, w.shift = c.file, c.off, int(c.off%directAlign)
		}
		copy(w.raw[w.shift+w.n:], c.data)
		w.n += len(c.data)
		w.ords = append(w.ords, c.ord)
		putBuf(c.data)
		if len(w.in) == 0 {
			w.flush() // nothing else waiting: do not sit on verified bytes
		}
	}
	w.flush()
}

// big writes a chunk larger than a block as it is, through the page cache.
func (w *chunkWriter) big(c wchunk) {
	_, err := w.sf.out[c.file].WriteAt(c.data, c.off)
	putBuf(c.data)
	w.ords = append(w.ords[:0], c.ord)
	w.record(err)
}

// record journals the block's chunks after a successful write, or keeps
// the first error.
func (w *chunkWriter) record(err error) {
	if err == nil {
		for _, o := range w.ords {
			if _, err = fmt.Fprintf(w.journal, "%d-%d\n", o, o+1); err != nil {
				break
			}
		}
	}
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("staging: %w", err)
		}
		w.mu.Unlock()
	}
	w.n, w.ords = 0, w.ords[:0]
}

// flush writes the block — its aligned middle with O_DIRECT when it can —
// then journals its chunks.
func (w *chunkWriter) flush() {
	if w.n == 0 {
		return
	}
	err := w.failed()
	if err == nil {
		err = w.write()
	}
	w.record(err)
}

func (w *chunkWriter) write() error {
	data := w.raw[w.shift : w.shift+w.n]
	out, direct := w.sf.out[w.file], w.sf.direct[w.file]
	head := min(int((directAlign-w.start%directAlign)%directAlign), w.n)
	mid := (w.n - head) / directAlign * directAlign
	if direct == nil || mid == 0 {
		_, err := out.WriteAt(data, w.start)
		return err
	}
	if _, err := out.WriteAt(data[:head], w.start); err != nil {
		return err
	}
	if _, err := direct.WriteAt(data[head:head+mid], w.start+int64(head)); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		if _, err := out.WriteAt(data[head:head+mid], w.start+int64(head)); err != nil {
			return err
		}
	}
	_, err := out.WriteAt(data[head+mid:], w.start+int64(head+mid))
	return err
}

// alignedBuf is n bytes starting on a directAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	return b[skip : skip+n : skip+n]
}
