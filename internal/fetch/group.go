package fetch

import "slices"

// groupClose splits n items, in order, into the groups one request each
// fetches: item i joins the group of item i-1 when gap(i), what lies between
// them, is at most small; then, while more than most groups are left, groups
// are joined across the smallest gaps. It returns each group's first item.
// A few requests with some bytes too many beat dozens of tiny ones.
func groupClose(n int, gap func(i int) int64, small int64, most int) []int {
	if n == 0 {
		return nil
	}
	starts, between := []int{0}, []int64(nil) // between[j]: the gap before starts[j+1]
	for i := 1; i < n; i++ {
		if g := gap(i); g > small {
			starts = append(starts, i)
			between = append(between, g)
		}
	}
	if len(starts) <= most {
		return starts
	}
	limit := slices.Sorted(slices.Values(between))[len(starts)-most-1]
	out := []int{0}
	for j, s := range starts[1:] {
		if between[j] > limit {
			out = append(out, s)
		}
	}
	return out
}

// splitAt cuts items into the groups that start at starts (groupClose's).
func splitAt[T any](items []T, starts []int) [][]T {
	out := make([][]T, len(starts))
	for j, s := range starts {
		end := len(items)
		if j+1 < len(starts) {
			end = starts[j+1]
		}
		out[j] = items[s:end]
	}
	return out
}
