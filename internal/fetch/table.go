package fetch

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/modelslot/modelslot/internal/chunkindex"
)

// table locates chunks by digest in 16 bytes each (a Go map of digests would
// take ten times that): sorted by the digest's first 8 bytes, with where the
// chunk lies packed into one word. 600k chunks — a 40 GiB model at 64 KiB —
// take under 10 MiB. A prefix is not a proof: whoever reads a located chunk
// hashes it, so two chunks sharing a prefix (about one chance in 10^8 for a
// million chunks) cost a second plan that downloads the chunk
// (errStaleReuse), never a wrong byte.
type table []tabEntry

type tabEntry struct {
	key uint64 // the digest's first 8 bytes
	pos uint64 // packPos(file, offset)
}

// maxFileOffset bounds what packPos can hold: 2^40 bytes (1 TiB) a file and
// 2^24 files.
const maxFileOffset = 1 << 40

func packPos(file int, off int64) uint64 { return uint64(file)<<40 | uint64(off) }

func unpackPos(p uint64) (file int, off int64) { return int(p >> 40), int64(p & (maxFileOffset - 1)) }

func keyOf(d chunkindex.Digest) uint64 { return binary.BigEndian.Uint64(d[:8]) }

func (t *table) add(d chunkindex.Digest, file int, off int64) {
	*t = append(*t, tabEntry{key: keyOf(d), pos: packPos(file, off)})
}

// seal sorts the table and keeps, for each key, the entry with the lowest
// position (the first use, when positions follow the index order).
func (t *table) seal() {
	slices.SortFunc(*t, func(a, b tabEntry) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.pos, b.pos))
	})
	*t = slices.CompactFunc(*t, func(a, b tabEntry) bool { return a.key == b.key })
	*t = slices.Clip(*t)
}

// find returns the position of the chunk with digest d.
func (t table) find(d chunkindex.Digest) (uint64, bool) {
	k := keyOf(d)
	i, ok := slices.BinarySearchFunc(t, k, func(e tabEntry, k uint64) int { return cmp.Compare(e.key, k) })
	if !ok {
		return 0, false
	}
	return t[i].pos, true
}
