package fetch

import (
	"testing"

	"github.com/modelslot/modelslot/internal/chunkindex"
)

// The grouping of chunks into Range requests, as a table: chunks given as
// (pack, offset, csize); want the runs' [start, end) ranges.
func TestRunsCoalesceAdjacentChunksAndSmallGaps(t *testing.T) {
	type c struct{ pack, off, size uint64 }
	type r struct{ start, end uint64 }
	cases := []struct {
		name   string
		chunks []c
		want   []r
	}{
		{"adjacent", []c{{0, 0, 100}, {0, 100, 50}, {0, 150, 10}}, []r{{0, 160}}},
		{"small gap read through", []c{{0, 0, 100}, {0, 100 + maxGap, 10}}, []r{{0, 110 + maxGap}}},
		{"large gap", []c{{0, 0, 100}, {0, 101 + maxGap, 10}}, []r{{0, 100}, {101 + maxGap, 111 + maxGap}}},
		{"another pack", []c{{0, 0, 100}, {1, 100, 10}}, []r{{0, 100}, {100, 110}}},
		{"backwards", []c{{0, 500, 100}, {0, 0, 100}}, []r{{500, 600}, {0, 100}}},
		{"over the cap", []c{{0, 0, MaxRangeBytes - 10}, {0, MaxRangeBytes - 10, 20}}, []r{{0, MaxRangeBytes - 10}, {MaxRangeBytes - 10, MaxRangeBytes + 10}}},
	}
	packs := []chunkindex.Digest{{1}, {2}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []r
			b := &runs{packs: packs, emit: func(x *run) error { got = append(got, r{x.start, x.end}); return nil }}
			for i, ch := range tc.chunks {
				e := &entry{loc: chunkindex.Loc{Pack: uint32(ch.pack), Offset: ch.off, CSize: uint32(ch.size)}}
				e.Ordinal = int64(i)
				if err := b.add(e); err != nil {
					t.Fatal(err)
				}
			}
			b.flush()
			if len(got) != len(tc.want) {
				t.Fatalf("runs %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("runs %v, want %v", got, tc.want)
				}
			}
		})
	}
}
