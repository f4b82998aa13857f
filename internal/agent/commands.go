package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/report"
)

// maxCommandSize bounds one command message or poll answer.
const maxCommandSize = 1 << 20

// commandSources starts listening for commands and returns the loops that must
// run for it (HTTP polling); MQTT delivers through the sink's connection.
func (a *Agent) commandSources() []func(context.Context) {
	var loops []func(context.Context)
	if a.mqtt != nil {
		a.mqtt.Subscribe(report.CommandsTopic(a.Config.Platform.TopicPrefix, a.Config.DeviceID), a.onMQTTCommand)
	}
	for i := range a.Config.Models {
		m := &a.Config.Models[i]
		if m.Source != "" && a.Config.Agent.ChannelPoll > 0 {
			p := &channelPoller{model: m.Name, url: m.Source, every: time.Duration(a.Config.Agent.ChannelPoll), inbox: a.Inbox}
			loops = append(loops, p.run)
		}
	}
	if url := a.Config.Platform.CommandsURL; url != "" {
		p := &poller{url: url, every: time.Duration(a.Config.Platform.PollInterval), inbox: a.Inbox}
		loops = append(loops, p.run)
	}
	return loops
}

// onMQTTCommand persists a command before acknowledging it to the broker: if
// the agent dies first, the broker delivers it again, and the dedupe window
// turns that second delivery into a no-op.
func (a *Agent) onMQTTCommand(m mqtt.Message) {
	var c Command
	if err := json.Unmarshal(m.Payload(), &c); err != nil {
		slog.Warn("agent: dropped a command that is not JSON", "err", err)
		m.Ack()
		return
	}
	added, err := a.Inbox.Add(c)
	switch {
	case err != nil && c.Validate() == nil:
		slog.Error("agent: could not persist a command; not acknowledging it so the broker redelivers", "id", c.ID, "err", err)
		return
	case err != nil:
		slog.Warn("agent: dropped an invalid command", "err", err)
	case !added:
		slog.Info("agent: command already received; ignoring the repeat", "id", c.ID)
	}
	m.Ack()
}

// poller fetches commands over HTTP for platforms without MQTT. The ETag of
// the last answer is sent back (If-None-Match) so an unchanged list costs a 304.
type poller struct {
	url   string
	every time.Duration
	inbox *Inbox
	etag  string
}

func (p *poller) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.poll(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("agent: command poll failed; trying again later", "url", p.url, "err", err)
		}
		sleepCtx(ctx, p.every, nil)
	}
}

func (p *poller) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
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
	var cmds []Command
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxCommandSize)).Decode(&cmds); err != nil {
		return fmt.Errorf("GET %s: not a JSON list of commands: %w", p.url, err)
	}
	for _, c := range cmds {
		if _, err := p.inbox.Add(c); err != nil {
			return err // not remembering the ETag: the list is read again next time
		}
	}
	p.etag = resp.Header.Get("ETag")
	return nil
}
