package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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
			if m.RolloutChannel != "" {
				// Following the channel too would install every new version at
				// once, past the rollout's stages.
				slog.Info("agent: the model follows fleet rollouts; its source channel is not polled", "model", m.Name)
				continue
			}
			loops = append(loops, channelPoller(m.Name, m.Source, time.Duration(a.Config.Agent.ChannelPoll), a.Inbox).run)
		}
	}
	loops = append(loops, a.rolloutSources()...)
	if url := a.Config.Platform.CommandsURL; url != "" {
		p := commandPoller(url, time.Duration(a.Config.Platform.PollInterval), func(b []byte) error { return a.intake(context.Background(), b) })
		p.client, p.token = a.platformClient(), a.token()
		loops = append(loops, p.run)
	}
	return loops
}

// onMQTTCommand persists a command before acknowledging it to the broker: if
// the agent dies first, the broker delivers it again, and the dedupe window
// turns that second delivery into a no-op. A refused command is answered and
// acknowledged: it is final.
func (a *Agent) onMQTTCommand(m mqtt.Message) {
	if err := a.intake(context.Background(), m.Payload()); err != nil {
		slog.Error("agent: could not persist a command; not acknowledging it so the broker redelivers", "err", err)
		return
	}
	m.Ack()
}

// commandPoller fetches commands over HTTP for platforms without MQTT: the
// answer is a JSON list of commands, each taken in as an MQTT one is.
func commandPoller(url string, every time.Duration, intake func([]byte) error) *etagPoller {
	return &etagPoller{url: url, every: every, maxSize: maxCommandSize, what: "command list",
		handle: func(body []byte) error {
			var cmds []json.RawMessage
			if err := json.Unmarshal(body, &cmds); err != nil {
				return fmt.Errorf("GET %s: not a JSON list of commands: %w", url, err)
			}
			for _, c := range cmds {
				if err := intake(c); err != nil {
					return err
				}
			}
			return nil
		}}
}
