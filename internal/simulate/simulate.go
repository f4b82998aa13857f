// Package simulate runs a fleet of real agents in one process, for `modelslot
// fleet simulate` and the fleet scale tests: each simulated device is an
// internal/agent Agent with its own state root (the real slot store), its own
// MQTT connection, and the real download path (session.InstallSource →
// internal/fetch) against a real repository. Only the health step is stood
// in for: there is no systemd unit per simulated device, so a Probe confirms
// each activation in process, and fails the one version it is told to.
//
// Nothing here changes how a real device behaves: the stand-in is put into
// the session's updater through the agent's Installer seam, the same seam the
// agent's own tests use. State roots belong on a tmpfs (/dev/shm): ten
// thousand slot stores fsync a lot, and a simulated device is not about disks.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelslot/modelslot/internal/agent"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/session"
)

// Options describe the simulated fleet. Every device gets the same config
// but for its id and state root.
type Options struct {
	Devices  int
	IDPrefix string // device ids are <IDPrefix><n>, n from 0; default "sim-"
	StateDir string // one state root per device beneath it; put it on a tmpfs
	Broker   string // [platform] mqtt_url
	Prefix   string // [platform] topic_prefix; default "modelslot"
	// Source is what every device installs before its agent starts (a
	// channel or manifest URL); "" = devices start empty. A device that
	// already runs a version (a second run on the same StateDir) keeps it.
	Source         string
	Model          string
	RolloutChannel string   // the channel whose rollouts the devices follow
	TrustedKeys    []string // the publisher's .pub files
	RolloutKeys    []string // the rollout key's .pub files
	// FailVersion is the version the probe stand-in fails ("" = none fails):
	// a device that activates it reverts, as a real one whose probe fails.
	FailVersion string
	// Concurrency bounds devices set up at once and installs running at once
	// (what one machine's two cores and one repository can serve; a real
	// fleet downloads on as many links as it has devices). Default 16.
	Concurrency int
	// Ramp spreads the agents' starts over this long (0: as fast as they
	// come up), so the broker is not hit by every CONNECT in one instant.
	Ramp      time.Duration
	Heartbeat time.Duration // retained status refresh; default 60s
	// RetryMin is each agent's agent.RetryMin: how often it looks for a
	// pending restore, and its first retry of a command. Default 10s, not a
	// device's 2s: that look reads the slot store (a dozen syscalls), and
	// ten thousand of them every 2s take most of a core of the simulating
	// machine, while a simulated device never keeps a restore pending (the
	// probe stand-in's old version always comes back at once).
	RetryMin time.Duration
}

// Fleet is a prepared simulated fleet.
type Fleet struct {
	opts    Options
	devices []*Device
	probe   *Probe

	installs atomic.Int64 // installs the agents started
	online   atomic.Int64 // agents running
}

// Device is one simulated device.
type Device struct {
	ID     string
	Config *config.Config
}

// New writes every device's config beneath o.StateDir.
func New(o Options) (*Fleet, error) { return build(o, true) }

// Open is a fleet another process runs (`fleet simulate` with the same
// options): its configs are read, not written, and it is for Snapshot only.
func Open(o Options) (*Fleet, error) { return build(o, false) }

func build(o Options, write bool) (*Fleet, error) {
	if o.Devices <= 0 || o.StateDir == "" || o.Model == "" || o.Broker == "" {
		return nil, errors.New("simulate: devices, state dir, model and broker are required")
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "sim-"
	}
	if o.Prefix == "" {
		o.Prefix = "modelslot"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Minute
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 10 * time.Second
	}
	f := &Fleet{opts: o, probe: &Probe{Fail: o.FailVersion}}
	for i := range o.Devices {
		d, err := f.device(fmt.Sprintf("%s%d", o.IDPrefix, i), write)
		if err != nil {
			return nil, err
		}
		f.devices = append(f.devices, d)
	}
	return f, nil
}

// device writes one device's config (unless !write) and parses it as the
// agent would.
func (f *Fleet) device(id string, write bool) (*Device, error) {
	o := f.opts
	root := filepath.Join(o.StateDir, id)
	path := filepath.Join(root, "modelslot.toml")
	if write {
		if err := f.writeConfig(id, root, path); err != nil {
			return nil, err
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("simulate: config of %s: %w", id, err)
	}
	return &Device{ID: id, Config: cfg}, nil
}

func (f *Fleet) writeConfig(id, root, path string) error {
	o := f.opts
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("simulate: state root of %s: %w", id, err)
	}
	conf := fmt.Sprintf("device_id = %q\nstate_root = %q\n\n[[model]]\nname = %q\ntrusted_keys = %s\n",
		id, root, o.Model, tomlList(o.TrustedKeys))
	if o.RolloutChannel != "" {
		conf += fmt.Sprintf("rollout_channel = %q\nrollout_keys = %s\n", o.RolloutChannel, tomlList(o.RolloutKeys))
	}
	conf += fmt.Sprintf("\n[platform]\nmqtt_url = %q\ntopic_prefix = %q\n\n[agent]\nheartbeat = %q\n",
		o.Broker, o.Prefix, o.Heartbeat.String())
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("simulate: config of %s: %w", id, err)
	}
	return nil
}

func tomlList(items []string) string {
	out := "["
	for i, s := range items {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", s)
	}
	return out + "]"
}

// Devices lists the simulated devices, in id order.
func (f *Fleet) Devices() []*Device { return f.devices }

// Probe is the health stand-in every install of this fleet confirms with.
func (f *Fleet) Probe() *Probe { return f.probe }

// Installs is how many installs the agents have started.
func (f *Fleet) Installs() int64 { return f.installs.Load() }

// Online is how many agents are running.
func (f *Fleet) Online() int64 { return f.online.Load() }

// Seed installs o.Source on every device that runs nothing yet, through the
// same path as `modelslot install SOURCE`, Concurrency devices at a time.
func (f *Fleet) Seed(ctx context.Context) error {
	if f.opts.Source == "" {
		return nil
	}
	return f.each(ctx, func(d *Device) error {
		m := &d.Config.Models[0]
		s, err := session.Open(ctx, d.Config, m, "simulate seed")
		if err != nil {
			return fmt.Errorf("simulate: open %s: %w", d.ID, err)
		}
		defer s.Close()
		if st := s.Store.State(); st.Active != "" {
			return nil
		}
		s.Updater.Confirm = f.probe
		if _, err := s.InstallSource(ctx, f.opts.Source, session.InstallOptions{}); err != nil {
			return fmt.Errorf("simulate: seed %s with %s: %w", d.ID, f.opts.Source, err)
		}
		return nil
	})
}

// each runs fn on every device, Concurrency at a time; the first error stops it.
func (f *Fleet) each(ctx context.Context, fn func(*Device) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, f.opts.Concurrency)
	var wg sync.WaitGroup
	for _, d := range f.devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(d); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// Run starts every device's agent (spread over Ramp) and returns when ctx
// ends and every agent has stopped. started is called once all are running.
func (f *Fleet) Run(ctx context.Context, started func()) error {
	installs := make(chan struct{}, f.opts.Concurrency)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	gap := f.opts.Ramp / time.Duration(len(f.devices))
	var up sync.WaitGroup
	for _, d := range f.devices {
		a, err := agent.New(d.Config)
		if err != nil {
			return fmt.Errorf("simulate: agent %s: %w", d.ID, err)
		}
		a.Heartbeat, a.RetryMin = f.opts.Heartbeat, f.opts.RetryMin
		a.Install = f.installer(installs)
		up.Add(1)
		wg.Go(func() {
			once := sync.OnceFunc(up.Done)
			defer once()
			err := a.Run(ctx, func() { f.online.Add(1); once() })
			f.online.Add(-1)
			if err != nil {
				slog.Error("simulate: agent stopped", "device", d.ID, "err", err)
				failed.CompareAndSwap(nil, &err)
			}
		})
		if gap > 0 {
			sleep(ctx, gap)
		}
		if ctx.Err() != nil {
			break
		}
	}
	up.Wait()
	if started != nil && ctx.Err() == nil {
		started()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return nil
}

// installer is the agents' install step: the real one (session.InstallSource:
// resolve, verify, download, fill, activate), confirmed by the probe
// stand-in, at most cap(slots) at once.
func (f *Fleet) installer(slots chan struct{}) agent.Installer {
	return func(ctx context.Context, s *session.Session, source string, o session.InstallOptions) error {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-slots }()
		f.installs.Add(1)
		s.Updater.Confirm = f.probe
		_, err := s.InstallSource(ctx, source, o)
		return err
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
