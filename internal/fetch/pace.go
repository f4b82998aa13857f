package fetch

import (
	"errors"
	"fmt"
	"time"
)

// errTooSlow: an attempt fell below the minimum rate or passed its deadline.
// It is retried (resuming by Range) like a dropped connection.
var errTooSlow = errors.New("the server is too slow")

// pace is the minimum rate over a window and the deadline of one attempt.
// Time spent waiting for the bandwidth limit is not counted: a slow cap is
// the device's choice, not the server's fault.
type pace struct {
	minRate  int64         // bytes per second
	window   time.Duration // over which minRate is measured
	deadline time.Duration // of the attempt, from its first read
}

// attemptPace measures one attempt against a pace.
type attemptPace struct {
	pace
	start, winStart   time.Time
	waited, winWaited time.Duration // in the bandwidth limiter
	winBytes          int64
}

func (p pace) start(now time.Time) *attemptPace {
	return &attemptPace{pace: p, start: now, winStart: now}
}

// add counts n bytes read (and the limiter's wait after them) and fails the
// attempt when the window ended below the minimum rate or the deadline passed.
func (a *attemptPace) add(now time.Time, n int, waited time.Duration) error {
	a.waited += waited
	a.winWaited += waited
	a.winBytes += int64(n)
	if a.deadline > 0 && now.Sub(a.start)-a.waited > a.deadline {
		return fmt.Errorf("%w: the request took longer than %s ([download] request_timeout)", errTooSlow, a.deadline)
	}
	span := now.Sub(a.winStart) - a.winWaited
	if a.minRate <= 0 || span < a.window {
		return nil
	}
	if rate := float64(a.winBytes) / span.Seconds(); rate < float64(a.minRate) {
		return fmt.Errorf("%w: %d bytes in %s (%.0f bytes/s), below the minimum of %d bytes/s ([download] min_rate over min_rate_window)",
			errTooSlow, a.winBytes, span.Round(time.Millisecond), rate, a.minRate)
	}
	a.winStart, a.winWaited, a.winBytes = now, 0, 0
	return nil
}
