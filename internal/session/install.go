package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fetch"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/verify"
)

// InstallOptions tune an install from a repository or bundle.
type InstallOptions struct {
	AllowDowngrade bool
	Stdin          io.Reader      // the bundle when source is "-"
	Progress       fetch.Progress // bytes on the wire (or read from the bundle); nil = none
	// Corrupt, if set, is called for each download of a chunk whose bytes
	// failed their digest or size (fetch.ClientOptions.Corrupt).
	Corrupt func()
	// ManifestSHA256, if set, pins the manifest: the sha256 of its envelope
	// must be this (a rollout names it), else the install is refused.
	ManifestSHA256 string
}

// InstallSource installs what source names — a channel or manifest URL, a
// bundle path, or "-" for a bundle on Stdin — into the model and activates it
// (fetch.Source). The manifest's signature, model, sequence (no downgrade) and
// device constraints are checked before the first chunk is fetched.
func (d *Session) InstallSource(ctx context.Context, source string, o InstallOptions) (update.Result, error) {
	keys, err := d.trustedKeys()
	if err != nil {
		return update.Result{}, err
	}
	dl := d.Config.Download
	conn, err := netconf.Load(dl.Files(), "")
	if err != nil {
		return update.Result{}, fmt.Errorf("%w: [download] %w", config.ErrConfig, err)
	}
	src, err := fetch.OpenSource(ctx, source, d.Store, fetch.SourceOptions{Trusted: keys, Stdin: o.Stdin,
		Client: fetch.ClientOptions{Bandwidth: int64(dl.Bandwidth), TLS: conn.TLS, Token: conn.Token,
			MinRate: int64(dl.MinRate), MinRateWindow: time.Duration(dl.MinRateWindow),
			RequestTimeout: time.Duration(dl.RequestTimeout), Corrupt: o.Corrupt},
		Workers: dl.Workers,
		Budget:  int64(d.Model.DownloadBudget), Progress: o.Progress})
	if err != nil {
		return update.Result{}, err
	}
	defer src.Close()
	if o.ManifestSHA256 != "" {
		sum := sha256.Sum256(src.Envelope)
		if got := hex.EncodeToString(sum[:]); got != o.ManifestSHA256 {
			return update.Result{}, fmt.Errorf("install %s: %w: the manifest's sha256 is %s, the rollout pinned %s (a mirror serving another signed manifest?)",
				source, verify.ErrRejected, got, o.ManifestSHA256)
		}
	}
	if err := d.policy(o.AllowDowngrade).Check(src.Manifest); err != nil {
		return update.Result{}, fmt.Errorf("install %s: %w", source, err)
	}
	return d.Updater.Install(ctx, src.Manifest, src)
}

func (d *Session) trustedKeys() (verify.Keyring, error) {
	if len(d.Model.TrustedKeys) == 0 {
		return nil, fmt.Errorf("%w: model %s: no trusted_keys configured: a device installs only what a key it trusts signed; add the publisher's .pub file (or use install --insecure for a development directory)", config.ErrConfig, d.Model.Name)
	}
	return verify.LoadKeyring(d.Model.TrustedKeys)
}

func (d *Session) policy(allowDowngrade bool) verify.Policy {
	p := verify.Policy{Model: d.Model.Name, AllowDowngrade: allowDowngrade,
		Device: verify.Device{Arch: runtime.GOARCH, Runtime: d.Config.RuntimeVersion, Labels: d.Config.Labels}}
	if st := d.Store.State(); st.Active != "" {
		p.ActiveSequence = st.Slots[st.Active].Sequence
	}
	return p
}
