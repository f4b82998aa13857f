package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// channelPoller watches a model's configured channel (`source`) and queues an
// install when the channel's pointer changes. The command id is derived from
// the pointer's bytes, so one pointer is installed at most once however often it
// is seen (a version that was rolled back is not tried again until the channel
// moves). The signature is checked by the install itself, not here.
type channelPoller struct {
	model string
	url   string
	every time.Duration
	inbox *Inbox
	etag  string
}

// maxChannelSize bounds a channel pointer; it is a few hundred bytes.
const maxChannelSize = 64 << 10

func (p *channelPoller) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.poll(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("agent: channel poll failed; trying again later", "model", p.model, "url", p.url, "err", err)
		}
		sleepCtx(ctx, p.every, nil)
	}
}

func (p *channelPoller) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", p.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxChannelSize))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	id := "channel-" + p.model + "-" + hex.EncodeToString(sum[:8])
	added, err := p.inbox.Add(Command{ID: id, Action: ActionInstall, Model: p.model, Source: p.url})
	if err != nil {
		return err
	}
	if added {
		slog.Info("agent: the channel moved; install queued", "model", p.model, "command", id)
	}
	p.etag = resp.Header.Get("ETag")
	return nil
}
