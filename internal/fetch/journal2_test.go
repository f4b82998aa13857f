package fetch

import (
	"os"
	"testing"
)

// The ordinal journal is a hint read back leniently: ranges as written, a
// torn last line ignored, nothing outside the index trusted.
func TestOrdinalJournalReadsRangesAndIgnoresTornOrForeignLines(t *testing.T) {
	w := workIn(t, t.TempDir())
	if err := w.recordOrdinals([]int64{0, 1, 2, 5, 9}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(w.path(ordJournal), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("3-2\n-1-4\n8-99\nx\n7-") // backwards, negative, past the end, junk, torn
	f.Close()
	done, err := w.journaledOrdinals(10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(10) {
		want := i <= 2 || i == 5 || i == 9
		if done.has(i) != want {
			t.Fatalf("ordinal %d journaled = %v, want %v", i, done.has(i), want)
		}
	}
}
