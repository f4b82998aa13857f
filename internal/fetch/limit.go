package fetch

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket shared by every download of a Client, so the
// bandwidth limit holds for the whole install however many chunks run at once.
type limiter struct {
	rate  float64 // bytes per second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	// A burst of a quarter second (at least 32 KiB) keeps reads large without
	// letting the average overshoot.
	burst := max(float64(bytesPerSec)/4, 32<<10)
	return &limiter{rate: float64(bytesPerSec), burst: burst, tokens: burst, last: time.Now()}
}

// wait blocks until n bytes may pass. A nil limiter never waits.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n) // may go negative: the debt is the wait
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(debt / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// chunkSize is the read size under a limit: small enough that the limiter
// paces smoothly, large enough that syscalls do not dominate.
func (l *limiter) readSize(max int) int {
	if l == nil {
		return max
	}
	return min(max, int(l.burst))
}
