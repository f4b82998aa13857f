package fetch

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// bitset is one bit per index ordinal: 75 KiB for 600k chunks.
type bitset []uint64

func newBitset(n int64) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int64) { b[i/64] |= 1 << (i % 64) }

func (b bitset) has(i int64) bool { return i/64 < int64(len(b)) && b[i/64]&(1<<(i%64)) != 0 }

// path is a file of the work directory, as a path for messages.
func (w *work) path(name string) string { return filepath.Join(w.dir, name) }

// rename renames the file from of the work directory to to, both resolved
// beneath the staging directory.
func (w *work) rename(from, to string) error {
	if err := w.root.Rename(path.Join(w.rel, from), path.Join(w.rel, to)); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	return nil
}

// journaledOrdinals reads the index ordinals an earlier attempt wrote. Like
// the digest journal it is a hint: each is re-hashed before it is trusted,
// and a torn last line is ignored (or names fewer ordinals than were written).
func (w *work) journaledOrdinals(total int64) (bitset, error) {
	return w.readOrdinals(ordJournal, total)
}

// readOrdinals reads a file of "from-to" ordinal lines of the work
// directory (the journal, noReuse) into a bitset; a missing file is empty.
func (w *work) readOrdinals(name string, total int64) (bitset, error) {
	b := newBitset(total)
	f, err := w.open(name, os.O_RDONLY)
	if missing(err) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), "-")
		a, err1 := strconv.ParseInt(from, 10, 64)
		e, err2 := strconv.ParseInt(to, 10, 64)
		if !ok || err1 != nil || err2 != nil || a < 0 || a >= e || e > total {
			continue
		}
		for i := a; i < e; i++ {
			b.set(i)
		}
	}
	return b, nil
}

// openJournal opens the ordinal journal for appending.
func (w *work) openJournal() (*os.File, error) {
	f, err := w.open(ordJournal, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	return f, nil
}

// recordOrdinals appends written ordinals (ascending) to the journal, as
// ranges of consecutive ones.
func (w *work) recordOrdinals(ords []int64) error {
	return w.appendOrdinals(ordJournal, ords)
}

// appendOrdinals appends ordinals (ascending) to the file name of the work
// directory, as ranges of consecutive ones.
func (w *work) appendOrdinals(name string, ords []int64) error {
	if len(ords) == 0 {
		return nil
	}
	line := appendRanges(nil, ords)
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := w.open(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("staging: journal: %w", err)
	}
	return nil
}

// appendRanges appends ordinals (ascending) to b as journal lines, one per
// range of consecutive ones.
func appendRanges(b []byte, ords []int64) []byte {
	for i := 0; i < len(ords); {
		j := i + 1
		for j < len(ords) && ords[j] == ords[j-1]+1 {
			j++
		}
		b = strconv.AppendInt(b, ords[i], 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, ords[j-1]+1, 10)
		b = append(b, '\n')
		i = j
	}
	return b
}
