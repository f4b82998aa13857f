package systemd

import (
	"context"
	"errors"
	"fmt"
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
	gap    bool       // a poll failed since the last one that succeeded
}

// watch runs until the first failure (returned) or the end of ctx (nil).
func (m *Manager) watch(ctx context.Context, unit string, lim Limits) *Failure {
	w := &watcher{m: m, unit: unit, lim: lim, state: watchState{since: time.Now()}, lastOK: time.Now()}
	w.sig = m.subscribe(ctx, unit)
	defer func() { w.sig.close() }()
	tick := time.NewTicker(lim.Interval)
	defer tick.Stop()
	for {
		if f := w.poll(ctx); f != nil {
			return f
		}
		if ctx.Err() != nil {
			return w.settle()
		}
		if f := w.waitTick(ctx, tick); f != nil {
			return f
		}
	}
}

// settle ends a watch whose context ended while the manager could not be
// asked: "healthy until the end" cannot be said of a unit nobody saw, so the
// watch goes on, with a context of its own, until one poll answers (then that
// answer is judged) or Limits.Unreachable has passed since the last one that
// did (ReasonUnreachable). Without a gap it returns nil at once.
func (w *watcher) settle() *Failure {
	if !w.gap {
		return nil
	}
	w.m.log.Warn("the watch window ended while the service manager could not be asked; waiting to judge the unit", "unit", w.unit)
	ctx, cancel := context.WithDeadline(context.Background(), w.lastOK.Add(w.lim.Unreachable+time.Second))
	defer cancel()
	for {
		if f := w.poll(ctx); f != nil || !w.gap {
			return f
		}
		select {
		case <-ctx.Done():
			return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: w.last, At: time.Now(), Err: ctx.Err(),
				Detail: "cannot read the unit's state for " + w.lim.Unreachable.String()}
		case <-time.After(w.lim.Interval):
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
		if f := w.lostTrack(st); f != nil {
			return f
		}
		w.last, w.lastOK, w.gap = st, time.Now(), false
		if w.sig.lost {
			w.m.log.Debug("D-Bus signals lost, subscribing again", "unit", w.unit)
			w.sig.close()
			w.sig = w.m.subscribe(ctx, w.unit)
		}
		return w.managerStopping(ctx, w.state.observe(st, w.lastOK, w.lim))
	case time.Since(w.lastOK) > w.lim.Unreachable:
		return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: w.last, At: time.Now(), Err: err,
			Detail: "cannot read the unit's state for " + w.lim.Unreachable.String() + ": " + err.Error()}
	default:
		w.gap = true
	}
	return nil
}

// lostTrack tells, after the manager could not be asked for a while, whether
// it is still the same manager watching the same run of the unit: a manager
// that re-executed keeps the unit's invocation; one that was restarted (or
// replaced after a crash) has started the unit anew or not at all, and what
// ran meanwhile was watched by nobody.
func (w *watcher) lostTrack(st UnitStatus) *Failure {
	if !w.gap {
		return nil
	}
	if w.last.Unit == "" {
		// The manager went away before the first look: a unit that is healthy
		// now becomes the baseline; one that is not was lost, not judged.
		if healthy(st) {
			return nil
		}
		return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: st, At: time.Now(),
			Detail: "the service manager went away before the unit could be watched; now " + describe(st)}
	}
	if st.InvocationID == w.last.InvocationID {
		return nil
	}
	return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: w.last, At: time.Now(),
		Detail: fmt.Sprintf("the service manager went away and came back with a new run of the unit (invocation %s → %q, now %s); what ran meanwhile was not watched",
			w.last.InvocationID, st.InvocationID, describe(st))}
}

// managerStopping turns a unit that stopped cleanly while its manager shuts
// down (systemctl --user exit, a manager restart) into ReasonUnreachable: the
// version did not fail, its manager went away.
func (w *watcher) managerStopping(ctx context.Context, f *Failure) *Failure {
	stopped := f != nil && f.Status.Result == "success" && !healthy(f.Status)
	if !stopped || (f.Reason != ReasonCrashLoop && f.Reason != ReasonStartTimeout) {
		return f
	}
	state, err := w.m.SystemState(ctx)
	if err == nil && state != "stopping" {
		return f
	}
	if err == nil {
		err = errors.New("the manager is stopping")
	}
	return &Failure{Unit: w.unit, Reason: ReasonUnreachable, Status: f.Status, At: f.At, Err: err,
		Detail: "the unit stopped while its service manager went away: " + describe(f.Status)}
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
				return w.managerStopping(ctx, w.m.refresh(ctx, f))
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
