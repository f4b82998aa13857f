package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/modelslot/modelslot/verify"
)

// Resolved is a verified manifest and where its chunks are.
type Resolved struct {
	Manifest *verify.Manifest
	Envelope []byte          // the signed manifest, as downloaded
	Channel  *verify.Channel // nil when a manifest URL was given
	RepoURL  string          // the repository root: chunks are under RepoURL/chunks/
}

// Resolve follows a channel URL (<repo>/<model>/channels/<channel>.json) or a
// manifest URL (<repo>/<model>/manifests/<version>.json) to a manifest verified
// against trusted. It checks that the channel, the manifest and the URL agree on
// the model, and that the manifest is the one the channel names by digest, so a
// mirror cannot pair a signed pointer with another signed manifest.
func (c *Client) Resolve(ctx context.Context, rawURL string, trusted verify.Keyring) (*Resolved, error) {
	repo, model, kind, err := splitURL(rawURL)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(rawURL); err == nil {
		c.trustHost(u.Host)
	}
	if kind == "manifests" {
		return c.resolveManifest(ctx, rawURL, repo, model, trusted, nil)
	}
	env, err := c.get(ctx, rawURL, verify.MaxChannelEnvelope, false, false)
	if err != nil {
		return nil, fmt.Errorf("resolve channel: %w", err)
	}
	ch, err := verify.OpenChannel(env, trusted)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", rawURL, err)
	}
	if ch.Model != model {
		return nil, rejectf("channel %s is signed for model %q but served under %q", rawURL, ch.Model, model)
	}
	return c.resolveManifest(ctx, joinURL(repo, model, ch.Manifest), repo, model, trusted, ch)
}

func (c *Client) resolveManifest(ctx context.Context, u, repo, model string, trusted verify.Keyring, ch *verify.Channel) (*Resolved, error) {
	env, err := c.get(ctx, u, verify.MaxEnvelopeSize, false, false)
	if err != nil {
		return nil, fmt.Errorf("resolve manifest: %w", err)
	}
	if ch != nil {
		sum := sha256.Sum256(env)
		if got := hex.EncodeToString(sum[:]); got != ch.ManifestSHA256 {
			return nil, rejectf("manifest %s has sha256 %s, the channel names %s: a stale mirror or another manifest", u, got, ch.ManifestSHA256)
		}
	}
	m, err := verify.OpenManifest(env, trusted)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", u, err)
	}
	if m.Model != model {
		return nil, rejectf("manifest %s is signed for model %q but served under %q", u, m.Model, model)
	}
	if ch != nil {
		if err := ch.CheckManifest(m); err != nil {
			return nil, err
		}
	} else if path.Base(u) != path.Base(verify.ManifestPath(m.Version)) {
		return nil, rejectf("manifest %s is signed for version %q: a manifest served under another name", u, m.Version)
	}
	return &Resolved{Manifest: m, Envelope: env, Channel: ch, RepoURL: repo}, nil
}

// splitURL takes <repo>/<model>/{channels|manifests}/<name>.json apart.
func splitURL(raw string) (repo, model, kind string, err error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", "", "", fmt.Errorf("source %q: want an http(s) URL of a channel or manifest", raw)
	}
	parts := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	if len(parts) < 3 || !strings.HasSuffix(parts[len(parts)-1], ".json") {
		return "", "", "", fmt.Errorf("source %q: want <repo>/<model>/channels/<channel>.json or <repo>/<model>/manifests/<version>.json", raw)
	}
	kind, model = parts[len(parts)-2], parts[len(parts)-3]
	if kind != "channels" && kind != "manifests" {
		return "", "", "", fmt.Errorf("source %q: the file must be under channels/ or manifests/", raw)
	}
	if err := verify.CheckModelName(model); err != nil {
		return "", "", "", fmt.Errorf("source %q: %w", raw, err)
	}
	u.Path = strings.Join(parts[:len(parts)-3], "/")
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	return strings.TrimSuffix(u.String(), "/"), model, kind, nil
}

// joinURL appends slash-separated path elements to a base URL.
func joinURL(base string, elems ...string) string {
	return strings.TrimSuffix(base, "/") + "/" + path.Join(elems...)
}
