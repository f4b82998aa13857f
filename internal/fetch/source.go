package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// SourceOptions tune an install from a repository or a bundle.
type SourceOptions struct {
	Trusted  verify.Keyring // the keys a manifest must be signed by
	Stdin    io.Reader      // the bundle when the source is "-"
	Client   ClientOptions  // for a repository
	Workers  int            // parallel chunk downloads; 0 = the default
	Budget   int64          // most bytes this update may download; 0 = no limit
	Progress Progress       // bytes on the wire (or read from the bundle); nil = none
}

// Source is the download step in one place, for the command line, the agent,
// the benchmark and the tests alike: it opens what a SOURCE names (a channel or
// manifest URL, a .mslot bundle path, or "-" for a bundle on stdin) and
// verifies its manifest against the trusted keys; then, as an update.Source,
// it fills a slot of store: plan where every byte comes from (the active
// slot, staging), refuse early when the disk or the budget cannot take it,
// download or ingest what is missing into staging, assemble the files into the
// slot. The device's policy (model, downgrade, requires) is verify.Policy,
// checked by the caller on Manifest before Fill.
type Source struct {
	Manifest *verify.Manifest
	Envelope []byte // the signed manifest, as received

	store    *slots.Store
	opts     SourceOptions
	resolved *Resolved      // a repository
	bundle   *bundle.Reader // or a bundle stream
	file     *os.File       // the bundle file, when one was opened
	client   *Client
	staging  *Staging    // set by Fill
	planned  func(*Plan) // a test seam: told the plan once it is made
	loaded   bool        // the bundle's index and locations are in staging
	locs     locLoader   // the repository's locations, brought when a plan downloads something
	stop     func()      // ends the cancellation watch of stdin
}

// OpenSource opens and verifies name for an install into store. Close it.
func OpenSource(ctx context.Context, name string, store *slots.Store, o SourceOptions) (*Source, error) {
	s := &Source{store: store, opts: o}
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		s.client = NewClient(o.Client)
		r, err := s.client.Resolve(ctx, name, o.Trusted)
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", name, err)
		}
		s.resolvedBy(s.client, r)
		return s, nil
	}
	var in io.Reader
	if name == "-" {
		if o.Stdin == nil {
			return nil, fmt.Errorf("install -: internal error: no stdin to read the bundle from")
		}
		in, s.stop = cancelableReader(ctx, o.Stdin)
	} else {
		f, err := openBundleFile(name)
		if err != nil {
			return nil, fmt.Errorf("install: %w; SOURCE is a channel or manifest URL (http[s]://…), a .mslot bundle, or - for a bundle on stdin", err)
		}
		s.file, in = f, f
		if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
			in, s.stop = cancelableReader(ctx, f) // a pipe (<(…), a FIFO) may stall like stdin
		}
	}
	r, err := bundle.NewReader(in, o.Trusted)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("install %s: %w", name, err)
	}
	s.bundle, s.Manifest, s.Envelope = r, r.Manifest, r.Envelope
	return s, nil
}

// resolvedBy makes s the repository source that c resolved as r.
func (s *Source) resolvedBy(c *Client, r *Resolved) {
	s.client, s.resolved, s.Manifest, s.Envelope = c, r, r.Manifest, r.Envelope
}

// Close releases the bundle file, if one was opened, and staging.
func (s *Source) Close() {
	if s.file != nil {
		s.file.Close()
	}
	if s.staging != nil {
		s.staging.Close()
	}
	if s.stop != nil {
		s.stop()
	}
}

// FirstStep tells the updater this source fetches before it installs.
func (s *Source) FirstStep() string { return report.StatusDownloading }

// Fill plans, checks space and budget, fetches into staging and assembles the
// files into fill.
func (s *Source) Fill(ctx context.Context, fill *slots.Fill) error {
	root, err := s.store.OpenStaging()
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	staging, err := NewStaging(root)
	if err != nil {
		return err
	}
	kept := false
	defer func() {
		if !kept {
			staging.Close()
		}
	}()
	space := Space{StagingDir: staging.Dir(), SlotDir: filepath.Dir(s.store.SlotDir(slots.A)), Budget: s.opts.Budget}
	fill.AddMeta("envelope.json", s.Envelope)
	var more []*Active
	if dir, m := fill.Previous(); m != nil {
		if prev := s.slot(dir, m); prev != nil {
			more = append(more, prev) // the slot's old version, kept aside
		}
	}
	active := s.active()
	defer active.close()
	plan, err := s.fill(ctx, fill, staging, active, space, more...)
	for _, a := range more {
		a.close()
	}
	if errors.Is(err, ErrNoSpace) && len(more) > 0 {
		slog.Info("not enough space to keep the slot's previous version for reuse; removing it first", "err", err)
		if derr := fill.DropPrevious(); derr != nil {
			return err
		}
		plan, err = s.fill(ctx, fill, staging, active, space)
	}
	if err != nil {
		return err
	}
	if s.Manifest.Index != nil {
		// A later install reuses this version's chunks by its index.
		w := plan.work
		fill.AddMetaFile(IndexFile, func() (*os.File, error) { return w.open(IndexFile, os.O_RDONLY) })
	}
	if s.staging != nil {
		s.staging.Close() // an earlier Fill's
	}
	s.staging, kept = staging, true
	return nil
}

// fill is Fill into any Fill, from staging and the slots: the steps, once.
func (s *Source) fill(ctx context.Context, fill Fill, staging *Staging, active *Active, space Space, more ...*Active) (*Plan, error) {
	m := s.Manifest
	if m.Index != nil {
		if err := s.loadIndex(ctx, staging, append([]*Active{active}, more...)); err != nil {
			return nil, err
		}
	}
	for replanned := false; ; replanned = true {
		plan, err := newPlan(ctx, m, staging, planOptions{locs: s.locs}, active, more...)
		if err != nil {
			return nil, err
		}
		slog.Info("install plan", "model", m.Model, "version", m.Version, "plan", plan.Summary())
		if s.planned != nil {
			s.planned(plan)
		}
		if err := plan.Check(space); err != nil {
			return plan, err
		}
		start := time.Now()
		if err := s.fetch(ctx, plan); err != nil {
			return plan, err
		}
		slog.Info("downloaded", "bytes", plan.FetchBytes, "took", time.Since(start).Round(time.Millisecond))
		err = Assemble(ctx, plan, fill)
		// Chunks a slot did not hold after all are downloaded by a second
		// plan (everything else is staged by now and re-hashed, not
		// fetched again). A bundle is read once: it cannot give them.
		if errors.Is(err, errStaleReuse) && !replanned && s.bundle == nil {
			slog.Warn("planning again to download the chunks a slot did not hold", "err", err)
			continue
		}
		return plan, err
	}
}

// Committed clears staging once the slot holds the new version for good.
func (s *Source) Committed() {
	if err := s.staging.Clear(); err != nil {
		slog.Warn("could not clear staging after the install; the next install clears it", "err", err)
	}
}

// loadIndex brings a schema-2 manifest's index into staging, and a bundle's
// locations; a repository's come when the plan needs them (s.locs). srcs are
// the slots whose index sections may be reused.
func (s *Source) loadIndex(ctx context.Context, staging *Staging, srcs []*Active) error {
	w, err := staging.workFor(s.Manifest)
	if err != nil {
		return err
	}
	if err := indexSpace(staging.Dir(), s.Manifest); err != nil {
		return err
	}
	if s.bundle != nil {
		if err := w.mkdir("."); err != nil {
			return err
		}
		if s.loaded {
			return nil // a bundle is read once; a second plan (less space) reuses it
		}
		s.loaded = true
		return loadBundleIndex(s.bundle, w)
	}
	s.locs = s.client.locations(s.resolved.RepoURL, s.Manifest, w)
	return s.client.loadIndex(ctx, s.resolved.RepoURL, s.Manifest, w, srcs)
}

func (s *Source) fetch(ctx context.Context, plan *Plan) error {
	if s.bundle != nil {
		return Ingest(ctx, s.bundle, plan, s.opts.Progress)
	}
	return s.client.Download(ctx, s.resolved.RepoURL, plan, DownloadOptions{Workers: s.opts.Workers, Progress: s.opts.Progress})
}

// active is the serving slot, whose bytes need not be downloaded again.
func (s *Source) active() *Active {
	st := s.store.State()
	if st.Active == "" {
		return nil
	}
	m, err := s.store.SlotManifest(st.Active)
	if err != nil {
		slog.Warn("the active slot's manifest cannot be read; downloading everything", "err", err)
		return nil
	}
	return s.slot(s.store.SlotDir(st.Active), m)
}

// slot is the slot directory dir holding m, opened beneath the state
// directory. One that cannot be opened so is not reused (nil): it only costs
// a download.
func (s *Source) slot(dir string, m *verify.Manifest) *Active {
	r, err := s.store.OpenDir(dir)
	if err != nil {
		slog.Warn("not reusing a slot: it cannot be opened", "dir", dir, "err", err)
		return nil
	}
	return &Active{Dir: dir, Manifest: m, Root: r}
}

// close releases the slot's directory, if it was opened (a nil a is none).
func (a *Active) close() {
	if a != nil && a.Root != nil {
		a.Root.Close()
	}
}
