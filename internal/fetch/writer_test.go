package fetch

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// writerFixture is two staged files of size bytes, open for the writer,
// with the journal at the work directory's place.
func writerFixture(t *testing.T, size int64) (*chunkWriter, []*os.File, *work) {
	t.Helper()
	dir := t.TempDir()
	var out []*os.File
	for _, n := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out = append(out, f)
	}
	sf := openDirect(out)
	t.Cleanup(sf.close)
	t.Logf("O_DIRECT: %v", sf.direct[0] != nil)
	wk := workIn(t, dir)
	jf, err := wk.openJournal()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jf.Close() })
	w, err := newChunkWriter(sf, jf, DefaultWorkers)
	if err != nil {
		t.Fatal(err)
	}
	return w, out, wk
}

// decodeInto stands for a chunk decoded into the writer's room for it.
func decodeInto(t *testing.T, w *chunkWriter, file int, off int64, data []byte) {
	t.Helper()
	dst, err := w.slot(file, off, len(data))
	if err != nil {
		t.Fatal(err)
	}
	if cap(dst) != len(data) {
		t.Fatalf("room for a chunk of %d bytes has %d", len(data), cap(dst))
	}
	copy(dst[:len(data)], data)
}

// The writer gathers chunks, decoded into its blocks, into large writes,
// their aligned middle with O_DIRECT where the filesystem has it, and
// journals each chunk once it is written: the files must hold exactly the
// chunks at their offsets, whatever their sizes and alignment, and the
// journal every ordinal; a chunk that failed its check (slot, but no done)
// is neither written nor journaled, and the chunk after it takes its room.
func TestChunkWriterWritesEveryChunkAndJournalsIt(t *testing.T) {
	const size = 12 << 20
	w, out, wk := writerFixture(t, size)
	want := [][]byte{make([]byte, size), make([]byte, size)}
	var ord int64
	put := func(file int, off int64, n int) {
		data := randomBytes(n, uint64(ord))
		decodeInto(t, w, file, off, data)
		copy(want[file][off:], data)
		w.done(ord, n)
		ord++
	}
	off := int64(100) // unaligned start
	for off+70000 < 9<<20 {
		put(0, off, 70001) // odd sizes, contiguous: blocks of many chunks
		off += 70001
	}
	decodeInto(t, w, 0, off, randomBytes(70001, 999)) // fails its check: no done
	failed := off
	put(1, 12345, 5<<20) // larger than a block
	put(0, 10<<20+7, 4096)
	w.flush()
	decodeInto(t, w, 1, 11<<20, randomBytes(5000, 998)) // fails, then the end
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	for i, f := range out {
		got, _ := os.ReadFile(f.Name())
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("file %d differs from the chunks written (a failed chunk at %d of file 0 must not be written)", i, failed)
		}
	}
	done, err := wk.journaledOrdinals(ord + 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ord + 1 {
		if done.has(i) != (i < ord) {
			t.Fatalf("chunk %d of %d written: journaled %v", i, ord, done.has(i))
		}
	}
}

// A slow server: chunks come far apart, the block never fills, the run has
// not ended. What was verified is still written and journaled within about
// blockLinger, not when the block fills or the response ends.
func TestChunkWriterJournalsASlowStreamWithoutWaitingForAFullBlock(t *testing.T) {
	w, out, wk := writerFixture(t, 1<<20)
	defer w.close()
	first := randomBytes(70001, 1)
	decodeInto(t, w, 0, 0, first)
	w.done(0, len(first))
	time.Sleep(blockLinger)
	second := randomBytes(70001, 2)
	decodeInto(t, w, 0, int64(len(first)), second)
	w.done(1, len(second)) // the block is blockLinger old: written now
	testutil.WaitFor(t, 10*time.Second, "both chunks journaled", func() bool {
		done, err := wk.journaledOrdinals(2)
		return err == nil && done.has(0) && done.has(1)
	})
	got := make([]byte, len(first)+len(second))
	if _, err := out[0].ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(first, second...)) {
		t.Fatal("the journaled chunks are not in the file")
	}
}

// A stalled server: one chunk, then nothing (no further chunk, no end of
// the response). The chunk is written and journaled within about
// blockIdle, so a kill during the stall loses no verified chunk.
func TestChunkWriterJournalsTheLastChunkBeforeAStall(t *testing.T) {
	w, _, wk := writerFixture(t, 1<<20)
	defer w.close()
	decodeInto(t, w, 0, 4096, randomBytes(70001, 1))
	w.done(7, 70001)
	testutil.WaitFor(t, 10*blockIdle+time.Second, "the chunk journaled", func() bool {
		done, err := wk.journaledOrdinals(8)
		return err == nil && done.has(7)
	})
}

// More download workers ([download] workers) get smaller blocks: all of
// them together stay within blockBudget, whatever the setting (down to the
// floor of minBlockSize), and the default gets the full block size.
func TestBlockSizeKeepsAllWorkersBlocksWithinTheBudget(t *testing.T) {
	if got := blockSizeFor(DefaultWorkers); got != 3<<20 {
		t.Fatalf("block size for the default %d workers: %d, want 3 MiB", DefaultWorkers, got)
	}
	for _, workers := range []int{1, 5, 8, 16, 64} {
		n := blockSizeFor(workers)
		if n%directAlign != 0 || n > blockSize || n < minBlockSize {
			t.Fatalf("%d workers: block size %d", workers, n)
		}
		if total := n * blocksPerWorker * workers; total > blockBudget && n > minBlockSize {
			t.Fatalf("%d workers: %d bytes of blocks, over the budget of %d", workers, total, blockBudget)
		}
	}
}
