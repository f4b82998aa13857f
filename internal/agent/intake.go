package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
)

// maxPlatformCommand bounds one command from the platform: a command is a few
// short fields, so anything bigger is refused unread.
const maxPlatformCommand = 64 << 10

// ErrRefused marks a platform command refused at intake (its size, its JSON,
// its action, model or source): it is answered with a rejected event and
// never queued, so it never runs and is never retried.
var ErrRefused = errors.New("command refused")

// ReasonInvalidCommand is the failure_reason of a rejected event.
const ReasonInvalidCommand = "invalid_command"

// ParseCommand decodes and checks one command from the platform against cfg.
// On a refusal (an error wrapping ErrRefused) it still returns what could be
// read of the command, so the answer can name its id.
func ParseCommand(payload []byte, cfg *config.Config) (Command, error) {
	var c Command
	if len(payload) > maxPlatformCommand {
		return c, fmt.Errorf("%w: %d bytes, over the %d-byte limit for one command", ErrRefused, len(payload), maxPlatformCommand)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return Command{}, fmt.Errorf("%w: not a JSON command: %w", ErrRefused, err)
	}
	c.Rollout, c.ManifestSHA256, c.Local = "", "", false // only the agent's own pollers set them
	if err := checkCommand(&c, cfg); err != nil {
		return c, err
	}
	return c, nil
}

// checkCommand is the intake check of a decoded platform command.
func checkCommand(c *Command, cfg *config.Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if _, err := cfg.Model(c.Model); err != nil {
		return fmt.Errorf("%w: command %s: model %q is not configured on this device", ErrRefused, c.ID, c.Model)
	}
	if c.Action != ActionInstall {
		if c.Source != "" {
			return fmt.Errorf("%w: command %s: a %s takes no source", ErrRefused, c.ID, c.Action)
		}
		return nil
	}
	if err := checkSource(c.Source, cfg.Agent.BundleDir); err != nil {
		return fmt.Errorf("%w: command %s: %w", ErrRefused, c.ID, err)
	}
	return nil
}

// checkSource accepts an http(s) URL, or a regular file under bundleDir when
// one is configured. Anything else — another scheme, a device, a FIFO (which
// would wedge the worker), a path outside the directory or through a link —
// is refused.
func checkSource(source, bundleDir string) error {
	if u, err := url.Parse(source); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host == "" {
			return fmt.Errorf("source %q names no host", source)
		}
		return nil
	}
	if bundleDir == "" {
		return fmt.Errorf("source %q is not an http(s) URL, and no [agent] bundle_dir allows local bundles", source)
	}
	if !filepath.IsAbs(source) || filepath.Clean(source) != source ||
		!strings.HasPrefix(source, bundleDir+string(filepath.Separator)) {
		return fmt.Errorf("source %q is neither an http(s) URL nor a clean path under bundle_dir %s", source, bundleDir)
	}
	// Every element below bundle_dir must be a real directory and the last a
	// regular file: a link could lead anywhere.
	rel := strings.TrimPrefix(source, bundleDir+string(filepath.Separator))
	p := bundleDir
	elems := strings.Split(rel, string(filepath.Separator))
	for i, e := range elems {
		p = filepath.Join(p, e)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("source %s: %w", source, err)
		}
		last := i == len(elems)-1
		if (last && !fi.Mode().IsRegular()) || (!last && !fi.IsDir()) {
			return fmt.Errorf("source %s: %s is a %s, not a regular file or directory (links, FIFOs and devices are refused)", source, p, fi.Mode().Type())
		}
	}
	return nil
}

// intake persists a platform command, or answers a refused one. It returns
// an error only when a valid command could not be persisted: the delivery
// must then not be acknowledged, so the platform sends it again.
func (a *Agent) intake(ctx context.Context, payload []byte) error {
	c, err := ParseCommand(payload, a.Config)
	if err != nil {
		a.reject(ctx, c, err)
		return nil
	}
	added, err := a.Inbox.Add(c)
	if err != nil {
		return err
	}
	if !added {
		slog.Info("agent: command already received; ignoring the repeat", "id", c.ID)
	}
	return nil
}

// reject answers a refused command with a final rejected event naming it. The
// event goes to the outbox of the model the command names (none named: the
// only model's), or to the device's own outbox when that model is not
// configured here, never filed among another model's events.
func (a *Agent) reject(_ context.Context, c Command, cause error) {
	slog.Warn("agent: refused a command", "id", c.ID, "action", c.Action, "model", c.Model, "err", cause)
	var o *report.Outbox
	if m, err := a.Config.Model(c.Model); err == nil { // "" names the only model
		o = a.outboxes[m.Name]
	}
	if o == nil {
		o = a.deviceOutbox // a model the device does not have, or none named among several
	}
	if o == nil {
		slog.Error("agent: no outbox to answer a refused command with", "id", c.ID)
		return
	}
	ev := &report.Event{Status: report.StatusRejected, DeviceID: a.Config.DeviceID, Model: c.Model,
		FailureReason: ReasonInvalidCommand, Logs: []string{cause.Error()}, CommandID: c.ID}
	// The version still served, so a platform that records the device's
	// version from its last event does not lose it.
	if m, err := a.Config.Model(c.Model); err == nil {
		if v, err := slots.OpenView(session.StoreConfig(a.Config, m)); err == nil {
			if st := v.State(); st.Active != "" {
				ev.CurrentVersion = st.Slots[st.Active].Version
			}
		}
	}
	if err := o.Append(ev); err != nil {
		slog.Warn("agent: could not queue the answer to a refused command", "id", c.ID, "err", err)
	}
	if a.metrics != nil {
		a.metrics.rejected(c.Action)
	}
}
