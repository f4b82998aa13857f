package publish

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentPublishesOfAModelGetDistinctSequences: publishes of one model
// run at once (two CI jobs, say) must not both take the next sequence — a
// device would refuse the second as a replay of the first, or a fleet would
// see two releases with one number.
func TestConcurrentPublishesOfAModelGetDistinctSequences(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	lockPoll = 5 * time.Millisecond
	defer func() { lockPoll = 50 * time.Millisecond }()
	const n = 6
	seqs := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		dir := modelDir(t, uint64(i+1))
		wg.Go(func() {
			res, err := Publish(context.Background(), dir, opts(repo, fmt.Sprintf("v%d", i+1), k))
			if err == nil {
				seqs[i] = res.Manifest.Sequence
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[uint64]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("publish v%d: %v", i+1, errs[i])
		}
		if j, ok := seen[seqs[i]]; ok {
			t.Fatalf("v%d and v%d were both published with sequence %d", j+1, i+1, seqs[i])
		}
		seen[seqs[i]] = i
	}
	for s := uint64(1); s <= n; s++ {
		if _, ok := seen[s]; !ok {
			t.Fatalf("sequences %v: want 1 to %d, each once", seqs, n)
		}
	}
}
