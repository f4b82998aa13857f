package loader

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Run follows the link until ctx ends: a swap of the link (seen by fsnotify
// on its directory, since the link is replaced by rename) or a SIGHUP triggers
// Reload; meanwhile it pings the systemd watchdog. A failed reload is logged
// and the old model keeps serving. Run returns ctx's error, or an error when
// Load was not called.
func (l *Loader[M]) Run(ctx context.Context) error {
	if l.cur.Load() == nil {
		return ErrNotLoaded
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go watchdog(ctx, l.log, l.opts.Alive)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.hup:
			l.log.Info("SIGHUP: reloading")
			l.poke()
		case <-l.trigger:
			l.settle(ctx)
			if err := l.Reload(ctx); err != nil {
				l.log.Error("reload failed", "err", err)
			}
		}
	}
}

// settle waits until the link has been quiet for the debounce time, so a
// burst of swaps costs one load of the last target.
func (l *Loader[M]) settle(ctx context.Context) {
	t := time.NewTimer(l.opts.Debounce)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.trigger:
			t.Reset(l.opts.Debounce)
		case <-t.C:
			return
		}
	}
}

// watch watches the link's directory and pokes on any event naming the link.
func (l *Loader[M]) watch() (*fsnotify.Watcher, error) {
	abs, err := filepath.Abs(l.link)
	if err != nil {
		return nil, fmt.Errorf("watch model link %s: %w", l.link, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch model link %s: %w; raise fs.inotify.max_user_instances or run with watching off", l.link, err)
	}
	dir, name := filepath.Split(abs)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch directory %s of the model link: %w", dir, err)
	}
	go func() {
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) == name {
					l.poke()
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				l.log.Warn("watching the model link", "err", err) // an overflow: reload to be safe
				l.poke()
			}
		}
	}()
	return w, nil
}
