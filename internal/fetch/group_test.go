package fetch

import (
	"slices"
	"testing"
)

func TestGroupClose(t *testing.T) {
	gaps := []int64{0, 5, 100, 3, 50, 7, 200} // gap before item i (item 0 has none)
	gap := func(i int) int64 { return gaps[i] }
	for _, c := range []struct {
		small int64
		most  int
		want  []int
	}{
		{10, 10, []int{0, 2, 4, 6}}, // joined across the gaps of at most 10
		{10, 3, []int{0, 2, 6}},     // then across the smallest left (50)
		{10, 1, []int{0}},           // one request for all
		{0, 100, []int{0, 1, 2, 3, 4, 5, 6}},
	} {
		if got := groupClose(len(gaps), gap, c.small, c.most); !slices.Equal(got, c.want) {
			t.Errorf("groupClose(small %d, most %d) = %v, want %v", c.small, c.most, got, c.want)
		}
	}
	if got := groupClose(0, gap, 10, 3); got != nil {
		t.Errorf("no items: %v", got)
	}
}
