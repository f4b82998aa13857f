package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Model is a loaded model as the server defines it.
type Model interface {
	// Probe answers one request body (the model's probe input) with the body
	// the server would send back; the loader compares it with the probe's
	// expected output before the model may serve.
	Probe(ctx context.Context, input []byte) ([]byte, error)
	// Close releases the model. It is called once, after the last lease on
	// the model was released.
	Close() error
}

// OpenFunc loads a model from a slot. It must read every file through s.
type OpenFunc[M Model] func(ctx context.Context, s *Slot) (M, error)

// Options tune a Loader. The zero value watches the link, reloads on SIGHUP
// and checks each new model's probe within 30 s and a tolerance of 1e-4.
type Options struct {
	Logger       *slog.Logger
	NoWatch      bool          // do not follow the link with fsnotify
	NoSignal     bool          // do not reload on SIGHUP
	Debounce     time.Duration // quiet time after a link event before reloading; default 25 ms
	ProbeTimeout time.Duration // default 30 s
	Tolerance    float64       // probe tolerance when the manifest gives none; default 1e-4
	// Alive reports whether the server really serves (e.g. a request through
	// its own listener). The watchdog is pinged only after it returns nil
	// within half the watchdog interval. Nil pings while Run runs.
	Alive func(ctx context.Context) error
}

// Loader holds the model currently served and replaces it on reload.
type Loader[M Model] struct {
	link    string
	open    OpenFunc[M]
	opts    Options
	log     *slog.Logger
	cur     atomic.Pointer[entry[M]]
	reload  sync.Mutex // one load at a time
	hup     chan os.Signal
	trigger chan struct{} // a reload is due; capacity 1
	watcher io.Closer     // fsnotify on the link's directory, from Load until Close
	lastErr atomic.Pointer[error]
}

// ErrNotLoaded is returned by Acquire before the first successful Load.
var ErrNotLoaded = errors.New("no model loaded yet")

// New makes a loader for the model behind link. Nothing is read until Load.
func New[M Model](link string, open OpenFunc[M], opts Options) *Loader[M] {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Debounce == 0 {
		opts.Debounce = 25 * time.Millisecond
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = 30 * time.Second
	}
	if opts.Tolerance == 0 {
		opts.Tolerance = 1e-4
	}
	return &Loader[M]{link: link, open: open, opts: opts, log: opts.Logger.With("link", link),
		trigger: make(chan struct{}, 1)}
}

// Load loads the model for the first time and tells systemd READY=1. It does
// not run the probe: with nothing else to serve, serving is better than not,
// and the updater's health check judges the answers. SIGHUP is caught from
// here on, so a reload sent right after READY cannot kill the process, and
// the link is watched from before it is read, so no swap goes unseen.
func (l *Loader[M]) Load(ctx context.Context) error {
	if !l.opts.NoSignal && l.hup == nil {
		l.hup = make(chan os.Signal, 1)
		signal.Notify(l.hup, syscall.SIGHUP)
	}
	if !l.opts.NoWatch && l.watcher == nil {
		w, err := l.watch()
		if err != nil {
			return err
		}
		l.watcher = w
	}
	l.reload.Lock()
	defer l.reload.Unlock()
	s, err := OpenSlot(l.link, l.opts.Tolerance)
	if err != nil {
		return err
	}
	m, err := l.open(ctx, s)
	if err != nil {
		s.close()
		return fmt.Errorf("load model %s: %w", s, err)
	}
	if old := l.cur.Swap(newEntry(m, s, l.log)); old != nil {
		old.release()
	}
	l.log.Info("model loaded", "model", s.Model, "version", s.Version, "slot", s.Dir)
	notify(l.log, stateReady, status("serving", s))
	return nil
}

// Reload loads the model the link points at now, checks it against its own
// probe data and swaps it in. It does nothing when that is the model already
// served. On any failure the old model keeps serving and the error says why.
func (l *Loader[M]) Reload(ctx context.Context) error {
	l.reload.Lock()
	defer l.reload.Unlock()
	err := l.reloadLocked(ctx)
	if err != nil {
		l.lastErr.Store(&err)
	} else {
		l.lastErr.Store(nil)
	}
	return err
}

func (l *Loader[M]) reloadLocked(ctx context.Context) error {
	s, err := OpenSlot(l.link, l.opts.Tolerance)
	if err != nil {
		return fmt.Errorf("reload: %w; still serving the old model", err)
	}
	old := l.cur.Load()
	if old != nil && old.slot.id == s.id {
		s.close()
		return nil
	}
	notify(l.log, stateReloading, "STATUS=loading "+s.String())
	start := time.Now()
	e, err := l.prepare(ctx, s)
	if err != nil {
		s.close()
		if old != nil {
			notify(l.log, stateReady, status("serving", old.slot)+" (reload of "+s.Version+" failed)")
		}
		return fmt.Errorf("reload %s: %w; still serving the old model", s, err)
	}
	l.cur.Store(e)
	l.log.Info("model reloaded", "version", s.Version, "slot", s.Dir, "took", time.Since(start))
	notify(l.log, stateReady, status("serving", s))
	if old != nil {
		old.release() // closes it once its in-flight requests are done
	}
	return nil
}

// prepare opens the model of s and checks it against its probe.
func (l *Loader[M]) prepare(ctx context.Context, s *Slot) (*entry[M], error) {
	m, err := l.open(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, l.opts.ProbeTimeout)
	defer cancel()
	if s.Probe.Input == "" {
		l.log.Warn("model ships no probe; swapping it in unchecked", "version", s.Version)
	} else if err := checkProbe(pctx, m, s); err != nil {
		if cerr := m.Close(); cerr != nil {
			l.log.Warn("close rejected model", "version", s.Version, "err", cerr)
		}
		return nil, fmt.Errorf("probe check: %w", err)
	}
	return newEntry(m, s, l.log), nil
}

// LastReloadError is the error of the last reload, nil after a success.
func (l *Loader[M]) LastReloadError() error {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Version is the version served now, "" before the first load.
func (l *Loader[M]) Version() string {
	if e := l.cur.Load(); e != nil {
		return e.slot.Version
	}
	return ""
}

// Close stops serving and tells systemd STOPPING=1: the current model is
// closed when its last lease is released.
func (l *Loader[M]) Close() {
	notify(l.log, daemon.SdNotifyStopping)
	if e := l.cur.Swap(nil); e != nil {
		e.release()
	}
	if l.hup != nil {
		signal.Stop(l.hup)
	}
	if l.watcher != nil {
		l.watcher.Close()
	}
}

// poke marks a reload as due; if one is already due it reads the newest link.
func (l *Loader[M]) poke() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

func status(verb string, s *Slot) string {
	return fmt.Sprintf("STATUS=%s %s", verb, s)
}
