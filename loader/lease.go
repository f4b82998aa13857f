package loader

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// entry is one loaded model with its slot and a reference count. The loader
// holds one reference while the entry is current; each Lease holds one more.
// When the count reaches zero the model and the slot handle are closed; a
// count that reached zero never rises again, so a closed model is never
// leased.
type entry[M Model] struct {
	model M
	slot  *Slot
	refs  atomic.Int64
	log   *slog.Logger
}

func newEntry[M Model](m M, s *Slot, log *slog.Logger) *entry[M] {
	e := &entry[M]{model: m, slot: s, log: log}
	e.refs.Store(1)
	return e
}

func (e *entry[M]) tryAcquire() bool {
	for {
		n := e.refs.Load()
		if n == 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (e *entry[M]) release() {
	if e.refs.Add(-1) != 0 {
		return
	}
	if err := e.model.Close(); err != nil {
		e.log.Warn("close old model", "version", e.slot.Version, "err", err)
	}
	if err := e.slot.close(); err != nil {
		e.log.Warn("close old slot", "slot", e.slot.Dir, "err", err)
	}
	e.log.Info("old model released", "version", e.slot.Version, "slot", e.slot.Dir)
}

// Lease is one request's hold on the model being served: the model and the
// slot it came from stay open until Release, even across a reload.
type Lease[M Model] struct {
	Model M
	Slot  *Slot
	e     *entry[M]
	once  sync.Once
}

// Release ends the lease; calling it again does nothing.
func (l *Lease[M]) Release() { l.once.Do(l.e.release) }

// Acquire leases the model served now. Every Acquire must be paired with a
// Release. It fails only before the first load or after Close.
func (l *Loader[M]) Acquire() (*Lease[M], error) {
	for {
		e := l.cur.Load()
		if e == nil {
			return nil, ErrNotLoaded
		}
		if e.tryAcquire() {
			return &Lease[M]{Model: e.model, Slot: e.slot, e: e}, nil
		}
		// e was replaced and closed between Load and tryAcquire: take the new one.
	}
}
