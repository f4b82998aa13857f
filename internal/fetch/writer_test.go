package fetch

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The writer gathers chunks into blocks, writes their aligned middle with
// O_DIRECT where the filesystem has it, and journals each chunk once it is
// written: the files must hold exactly the chunks at their offsets, whatever
// their sizes and alignment, and the journal every ordinal.
func TestChunkWriterWritesEveryChunkAndJournalsIt(t *testing.T) {
	dir := t.TempDir()
	const size = 6 << 20
	var out []*os.File
	for _, n := range []string{"a", "b"} {
		f, err := os.Create(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		defer f.Close()
		out = append(out, f)
	}
	sf := openDirect(out)
	defer sf.close()
	t.Logf("O_DIRECT: %v", sf.direct[0] != nil)
	jf, _ := os.Create(filepath.Join(dir, "journal"))
	w := newChunkWriter(sf, jf)
	want := [][]byte{make([]byte, size), make([]byte, size)}
	var ord int64
	put := func(file int, off int64, n int) {
		data := getBuf(int64(n))[:n]
		copy(data, randomBytes(n, uint64(ord)))
		copy(want[file][off:], data)
		if err := w.put(wchunk{file: file, off: off, data: data, ord: ord}); err != nil {
			t.Fatal(err)
		}
		ord++
	}
	off := int64(100) // unaligned start
	for off+70000 < 5<<20 {
		put(0, off, 70001) // odd sizes, contiguous: blocks of many chunks
		off += 70001
	}
	put(1, 12345, 3<<20) // larger than a block
	put(0, 5<<20+7, 4096)
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	for i, f := range out {
		got, _ := os.ReadFile(f.Name())
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("file %d differs from the chunks written", i)
		}
	}
	sub := workIn(t, dir)
	os.Rename(filepath.Join(dir, "journal"), sub.path(ordJournal))
	done, _ := sub.journaledOrdinals(ord)
	for i := range ord {
		if !done.has(i) {
			t.Fatalf("chunk %d of %d was written but not journaled", i, ord)
		}
	}
}
