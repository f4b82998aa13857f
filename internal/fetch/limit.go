package fetch

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket shared by every download of a Client, so the
// bandwidth limit holds for the whole install however many chunks run at once.
// It is charged for the bytes each read returned, after the read: charging
// what a read asked for (a read returns what the socket holds, often far
// less) once delivered a quarter of the set rate.
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
	// A burst of a tenth of a second (at least 32 KiB) keeps reads large
	// without letting the average overshoot; the bucket starts empty, so the
	// first reads do not come on top of the rate either.
	burst := max(float64(bytesPerSec)/10, 32<<10)
	return &limiter{rate: float64(bytesPerSec), burst: burst, last: time.Now()}
}

// wait charges n bytes that were read and blocks until the rate allows them.
// It returns how long it waited. A nil limiter never waits.
func (l *limiter) wait(ctx context.Context, n int) (time.Duration, error) {
	if l == nil || n <= 0 {
		return 0, nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n) // may go negative: the debt is the wait
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return 0, nil
	}
	d := time.Duration(debt / l.rate * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return d, nil
	}
}

// readSize is the read size under a limit: small enough that the limiter
// paces smoothly, large enough that syscalls do not dominate.
func (l *limiter) readSize(max int) int {
	if l == nil {
		return max
	}
	return min(max, int(l.burst))
}
