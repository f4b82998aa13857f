package fetch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// Progress reports bytes done of a total. Calls are serialized and done never
// goes down, so a terminal progress bar can draw it directly.
type Progress func(done, total int64)

// DefaultWorkers is how many chunks download at once: enough to hide a round
// trip per chunk, few enough to stay gentle on a small server.
const DefaultWorkers = 4

// DownloadOptions tune Download.
type DownloadOptions struct {
	Workers  int      // chunks at once; 0 = DefaultWorkers
	Progress Progress // compressed bytes on the wire; nil = none
}

// Download fetches the plan's chunks from the repository at repoURL into
// staging, each verified before it is stored. The first error that retrying
// did not fix stops the others; what was stored stays for the next attempt.
func (c *Client) Download(ctx context.Context, repoURL string, p *Plan, o DownloadOptions) error {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if p.ix != nil {
		return c.downloadIndexed(ctx, repoURL, p, o)
	}
	if err := p.prepareFiles(); err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	report := newReporter(o.Progress, p.FetchBytes)
	jobs := make(chan verify.Chunk)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range min(o.Workers, max(len(p.Fetch), 1)) {
		wg.Go(func() {
			for ch := range jobs {
				if err := c.fetchChunk(ctx, repoURL, p, ch); err != nil {
					mu.Lock()
					first = preferReal(first, err)
					mu.Unlock()
					cancel()
					continue
				}
				report.add(ch.CSize)
			}
		})
	}
	for _, ch := range p.Fetch {
		if ctx.Err() != nil {
			break
		}
		jobs <- ch
	}
	close(jobs)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	if first == nil {
		slog.Info("downloaded", "model", p.Manifest.Model, "version", p.Manifest.Version,
			"chunks", len(p.Fetch), "bytes", p.FetchBytes, "took", time.Since(start).Round(time.Millisecond))
	}
	return first
}

// preferReal keeps the first real failure over the cancellations it caused.
func preferReal(first, err error) error {
	if first == nil || (errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
		return err
	}
	return first
}

// reporter serializes progress calls.
type reporter struct {
	fn    Progress
	total int64
	mu    sync.Mutex
	done  atomic.Int64
}

func newReporter(fn Progress, total int64) *reporter {
	r := &reporter{fn: fn, total: total}
	if fn != nil {
		fn(0, total)
	}
	return r
}

func (r *reporter) add(n int64) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(r.done.Add(n), r.total)
}
