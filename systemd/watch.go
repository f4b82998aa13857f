package systemd

import (
	"context"
	"time"
)

// Defaults of Limits.
const (
	DefaultWatchInterval = 250 * time.Millisecond
	DefaultUnreachable   = 10 * time.Second
)

// Limits are the thresholds a watched unit must stay within.
type Limits struct {
	// StartTimeout is how long the unit may take, from the start of the watch, to
	// be active for the first time. Zero means it must be active already: use zero
	// after Restart or Reload returned nil, which means it is.
	StartTimeout time.Duration
	// MaxMemory in bytes; 0 means no limit.
	MaxMemory uint64
	// Interval between two polls; DefaultWatchInterval if zero.
	Interval time.Duration
	// Unreachable is how long the manager may fail to answer before the watch
	// gives up with ReasonUnreachable; DefaultUnreachable if zero.
	Unreachable time.Duration
}

// Watch watches unit until ctx ends and sends the first failure it sees on the
// returned channel, which is closed after that failure or when ctx ends. A
// receive of nil (closed channel) therefore means "healthy for the whole window".
//
// It polls the unit every Limits.Interval and, besides, listens to the unit's
// PropertiesChanged signals. Polling is the ground truth: signals are coalesced,
// lost while the connection is re-dialed, and MemoryCurrent and the /proc
// fallback change without any signal. The signals catch what a poll can miss:
// after a watchdog kill, Result=watchdog lasts only until the automatic restart
// begins (RestartSec, 100 ms in tests), after which Result is success again and
// only the higher NRestarts (crash_loop) would remain.
func (m *Manager) Watch(ctx context.Context, unit string, lim Limits) <-chan *Failure {
	if lim.Interval <= 0 {
		lim.Interval = DefaultWatchInterval
	}
	if lim.Unreachable <= 0 {
		lim.Unreachable = DefaultUnreachable
	}
	out := make(chan *Failure, 1)
	go func() {
		defer close(out)
		if f := m.watch(ctx, unit, lim); f != nil {
			m.log.Warn("unit unhealthy", "unit", unit, "reason", f.Reason, "detail", f.Detail)
			out <- f
		}
	}()
	return out
}

// watcher is one running Watch.
type watcher struct {
	m      *Manager
	unit   string
	lim    Limits
	state  watchState
	sig    *unitSignals
	last   UnitStatus // the last status polled, with signal changes merged in
	lastOK time.Time  // when a poll last succeeded
}

// watch runs until the first failure (returned) or the end of ctx (nil).
func (m *Manager) watch(ctx context.Context, unit string, lim Limits) *Failure {
	w := &watcher{m: m, unit: unit, lim: lim, state: watchState{since: time.Now()}, lastOK: time.Now()}
	w.sig = m.subscribe(ctx, unit)
	defer func() { w.sig.close() }()
	tick := time.NewTicker(lim.Interval)
	defer tick.Stop()
	for {
		if f := w.poll(ctx); f != nil || ctx.Err() != nil {
			return f
		}
		if f := w.waitTick(ctx, tick); f != nil {
			return f
		}
	}
}

// poll reads the unit once and judges it; after the signal connection was
// lost (the manager re-executed), it subscribes again once the manager answers.
func (w *watcher) poll(ctx context.Context) *Failure {
	st, err := w.m.Status(ctx, w.unit)
	switch {
	case ctx.Err() != nil:
		return nil
	case err == nil:
		w.last, w.lastOK = st, time.Now()
		if w.sig.lost {
			w.m.log.Debug("D-Bus signals lost, subscribing again", "unit", w.unit)
			w.sig.close()
			w.sig = w.m.subscribe(ctx, w.unit)
		}
		return w.state.observe(st, w.lastOK, w.lim)
	case time.Since(w.lastOK) > w.lim.Unreachable:
		return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: w.last, At: time.Now(), Err: err,
			Detail: "cannot read the unit's state for " + w.lim.Unreachable.String() + ": " + err.Error()}
	}
	return nil
}

// waitTick waits for the next poll, judging signal updates that come meanwhile.
func (w *watcher) waitTick(ctx context.Context, tick *time.Ticker) *Failure {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			return nil
		case changed, ok := <-w.sig.updates():
			if !ok {
				w.sig.lost, w.sig.ch = true, nil
				continue
			}
			if w.last.Unit == "" {
				continue // nothing polled yet to apply the change to
			}
			changed.applyTo(&w.last)
			if f := w.state.observe(w.last, time.Now(), w.lim); f != nil {
				return w.m.refresh(ctx, f)
			}
		}
	}
}

// refresh replaces the status of a failure seen in a signal, which merges
// changes into an older poll, by a fresh read, so the report shows the unit as
// it is; the reason stays what the signal showed.
func (m *Manager) refresh(ctx context.Context, f *Failure) *Failure {
	if st, err := m.Status(ctx, f.Unit); err == nil {
		f.Status = st
		f.Detail += " (seen in a D-Bus signal; now " + describe(st) + ")"
	}
	return f
}
