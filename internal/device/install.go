package device

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fetch"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// InstallOptions tune an install from a repository or bundle.
type InstallOptions struct {
	AllowDowngrade bool
	Stdin          io.Reader      // the bundle when source is "-"
	Progress       fetch.Progress // bytes on the wire (or read from the bundle); nil = none
}

// InstallSource installs what source names — a channel or manifest URL, a
// bundle path, or "-" for a bundle on Stdin — into the model and activates it.
// The manifest's signature, model, sequence (no downgrade) and device
// constraints are checked before the first chunk is fetched.
func (d *Model) InstallSource(ctx context.Context, source string, o InstallOptions) (update.Result, error) {
	keys, err := d.trustedKeys()
	if err != nil {
		return update.Result{}, err
	}
	src, err := d.openSource(ctx, source, keys, o)
	if err != nil {
		return update.Result{}, err
	}
	defer src.close()
	if err := d.policy(o.AllowDowngrade).Check(src.manifest()); err != nil {
		return update.Result{}, fmt.Errorf("install %s: %w", source, err)
	}
	return d.Updater.Install(ctx, src.manifest(), src)
}

func (d *Model) trustedKeys() (verify.Keyring, error) {
	if len(d.Model.TrustedKeys) == 0 {
		return nil, fmt.Errorf("%w: model %s: no trusted_keys configured: a device installs only what a key it trusts signed; add the publisher's .pub file (or use install --insecure for a development directory)", config.ErrConfig, d.Model.Name)
	}
	return verify.LoadKeyring(d.Model.TrustedKeys)
}

func (d *Model) policy(allowDowngrade bool) verify.Policy {
	p := verify.Policy{Model: d.Model.Name, AllowDowngrade: allowDowngrade,
		Device: verify.Device{Arch: runtime.GOARCH, Runtime: d.Config.RuntimeVersion, Labels: d.Config.Labels}}
	if st := d.Store.State(); st.Active != "" {
		p.ActiveSequence = st.Slots[st.Active].Sequence
	}
	return p
}

// source is a verified manifest and the chunks behind it; it fills a slot.
type source struct {
	d        *Model
	resolved *fetch.Resolved // repository
	bundle   *bundle.Reader  // or bundle stream
	file     *os.File        // the bundle file, when one was opened
	client   *fetch.Client
	progress fetch.Progress
	staging  *fetch.Staging // set by Fill
}

func (d *Model) openSource(ctx context.Context, name string, keys verify.Keyring, o InstallOptions) (*source, error) {
	s := &source{d: d, progress: o.Progress}
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		s.client = fetch.NewClient(fetch.ClientOptions{Bandwidth: int64(d.Config.Download.Bandwidth)})
		r, err := s.client.Resolve(ctx, name, keys)
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", name, err)
		}
		s.resolved = r
		return s, nil
	}
	in := o.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("install: %w; SOURCE is a channel or manifest URL (http[s]://…), a .mslot bundle, or - for a bundle on stdin", err)
		}
		s.file, in = f, f
	}
	r, err := bundle.NewReader(in, keys)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("install %s: %w", name, err)
	}
	s.bundle = r
	return s, nil
}

func (s *source) manifest() *verify.Manifest {
	if s.bundle != nil {
		return s.bundle.Manifest
	}
	return s.resolved.Manifest
}

func (s *source) envelope() []byte {
	if s.bundle != nil {
		return s.bundle.Envelope
	}
	return s.resolved.Envelope
}

func (s *source) close() {
	if s.file != nil {
		s.file.Close()
	}
}

// Downloads tells the updater this source fetches before it installs.
func (s *source) FirstStep() string { return report.StatusDownloading }

// Fill plans where every byte comes from, refuses early when the disk or the
// budget cannot take it, fetches what is missing into staging, and assembles
// the files into the slot.
func (s *source) Fill(ctx context.Context, fill *slots.Fill) error {
	store, m := s.d.Store, s.manifest()
	staging, err := fetch.OpenStaging(store.StagingPath())
	if err != nil {
		return err
	}
	plan, err := fetch.NewPlan(ctx, m, staging, s.active())
	if err != nil {
		return err
	}
	slog.Info("install plan", "model", m.Model, "version", m.Version, "plan", plan.Summary())
	err = plan.Check(fetch.Space{StagingDir: staging.Dir(), SlotDir: filepath.Dir(store.SlotDir(slots.A)),
		Budget: int64(s.d.Model.DownloadBudget)})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := s.fetch(ctx, plan); err != nil {
		return err
	}
	slog.Info("downloaded", "bytes", plan.FetchBytes, "took", time.Since(start).Round(time.Millisecond))
	fill.AddMeta("envelope.json", s.envelope())
	if err := fetch.Assemble(ctx, plan, fill); err != nil {
		return err
	}
	s.staging = staging
	return nil
}

// Committed clears staging once the slot holds the new version for good.
func (s *source) Committed() {
	if err := s.staging.Clear(); err != nil {
		slog.Warn("could not clear staging after the install; the next install clears it", "err", err)
	}
}

func (s *source) fetch(ctx context.Context, plan *fetch.Plan) error {
	if s.bundle != nil {
		return fetch.Ingest(ctx, s.bundle, plan, s.progress)
	}
	return s.client.Download(ctx, s.resolved.RepoURL, plan,
		fetch.DownloadOptions{Workers: s.d.Config.Download.Workers, Progress: s.progress})
}

// active is the serving slot, whose bytes need not be downloaded again.
func (s *source) active() *fetch.Active {
	st := s.d.Store.State()
	if st.Active == "" {
		return nil
	}
	m, err := s.d.Store.SlotManifest(st.Active)
	if err != nil {
		slog.Warn("the active slot's manifest cannot be read; downloading everything", "err", err)
		return nil
	}
	return &fetch.Active{Dir: s.d.Store.SlotDir(st.Active), Manifest: m}
}
