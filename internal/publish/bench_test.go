package publish

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPublishMemory publishes models of 32 and 256 MiB side by side and
// reports the peak heap of each: publish holds a bounded number of chunks in
// flight and 52 bytes of index and locations a chunk, so the peak must not
// grow with the model beyond that (8× the model: ~0.3 MiB more index).
//
//	go test -run '^$' -bench PublishMemory ./internal/publish
func BenchmarkPublishMemory(b *testing.B) {
	for _, mib := range []int{32, 256} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			k, dir := testKey(b), b.TempDir()
			write(b, dir, "weights.bin", randomData(uint64(mib), mib<<20))
			for i := range b.N {
				o := opts(b.TempDir(), fmt.Sprintf("v%d", i), k)
				o.Params, o.Level = chunkerDefault(), 1
				runtime.GC()
				peak := peakHeap(func() {
					if _, err := Publish(context.Background(), dir, o); err != nil {
						b.Fatal(err)
					}
				})
				b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
				b.SetBytes(int64(mib) << 20)
			}
		})
	}
}

// peakHeap samples the heap in use while fn runs.
func peakHeap(fn func()) uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}
