package agent

import (
	"log/slog"
	"sync"
	"time"
)

// liveness records when each of the agent's own loops last showed it is
// alive, so that systemd's watchdog is fed only while every one of them does:
// a loop wedged in a call that ignores its context (a read of a FIFO, a hung
// syscall) stops the pings, and systemd restarts the agent, which resumes what
// was interrupted. Each loop has its own bound: how long it may legitimately
// go without a beat (a command's whole health window, say).
type liveness struct {
	mu    sync.Mutex
	last  map[string]time.Time
	limit map[string]time.Duration
	now   func() time.Time
}

func newLiveness() *liveness {
	return &liveness{last: map[string]time.Time{}, limit: map[string]time.Duration{}, now: time.Now}
}

// register starts tracking loop name, alive now, allowed limit between beats.
func (l *liveness) register(name string, limit time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[name], l.limit[name] = l.now(), limit
}

// beat says loop name is alive now.
func (l *liveness) beat(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.limit[name]; ok {
		l.last[name] = l.now()
	}
}

// done stops tracking loop name (it ended with its context).
func (l *liveness) done(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, name)
	delete(l.limit, name)
}

// alive reports whether every tracked loop beat within its limit; the first
// one that did not is logged, once per call.
func (l *liveness) alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for name, last := range l.last {
		if since := now.Sub(last); since > l.limit[name] {
			slog.Error("agent: a loop stopped making progress; not feeding the watchdog, so systemd restarts the agent",
				"loop", name, "silent_for", since.Round(time.Second), "limit", l.limit[name])
			return false
		}
	}
	return true
}
