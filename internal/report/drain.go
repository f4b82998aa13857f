package report

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/modelslot/modelslot/internal/crashpoint"
)

// afterSendPoint is where a crash leaves events delivered but not acknowledged
// in the outbox: they must be sent again, with the same event_id.
var afterSendPoint = crashpoint.Declare("agent.drain-after-send")

// Sink delivers events to the platform.
type Sink interface {
	// Name identifies the sink's cursor in the outbox; keep it stable.
	Name() string
	// Send delivers events in order and returns how many of them, from the
	// start, were acknowledged; an error says why the rest were not.
	Send(ctx context.Context, events []*Event) (int, error)
}

// Drainer moves events from an outbox to one sink, in order, retrying with
// exponential backoff and jitter while the sink is unreachable.
type Drainer struct {
	Outbox     *Outbox
	Sink       Sink
	Batch      int           // events per Send; default 100
	MinBackoff time.Duration // default 500ms
	MaxBackoff time.Duration // default 1m
	Poll       time.Duration // how often to look for events appended by other processes; default 2s
	OnSent     func(n int)   // optional, for metrics
}

// Run drains until ctx is cancelled.
func (d *Drainer) Run(ctx context.Context) {
	backoff := d.minBackoff()
	for ctx.Err() == nil {
		changed := d.Outbox.Changed()
		sent, err := d.drainOnce(ctx)
		switch {
		case err != nil:
			wait := jitter(backoff)
			slog.Warn("report: sink unreachable; events stay queued", "sink", d.Sink.Name(), "err", err, "retry_in", wait.Round(time.Millisecond))
			sleep(ctx, wait, nil)
			backoff = min(backoff*2, d.maxBackoff())
		case sent == 0:
			backoff = d.minBackoff()
			sleep(ctx, d.poll(), changed)
		default:
			backoff = d.minBackoff()
		}
	}
}

// drainOnce sends one batch and acknowledges what the sink accepted.
func (d *Drainer) drainOnce(ctx context.Context) (int, error) {
	events, err := d.Outbox.Pending(d.Sink.Name(), d.batch())
	if err != nil || len(events) == 0 {
		return 0, err
	}
	n, err := d.Sink.Send(ctx, events)
	if n > 0 {
		afterSendPoint.Hit()
		if aerr := d.Outbox.Ack(d.Sink.Name(), events[n-1].Sequence); aerr != nil {
			return n, aerr
		}
		if d.OnSent != nil {
			d.OnSent(n)
		}
	}
	return n, err
}

// jitter spreads retries of a fleet that lost its platform at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func (d *Drainer) batch() int                { return orDefault(d.Batch, 100) }
func (d *Drainer) minBackoff() time.Duration { return orDefault(d.MinBackoff, 500*time.Millisecond) }
func (d *Drainer) maxBackoff() time.Duration { return orDefault(d.MaxBackoff, time.Minute) }
func (d *Drainer) poll() time.Duration       { return orDefault(d.Poll, 2*time.Second) }

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
