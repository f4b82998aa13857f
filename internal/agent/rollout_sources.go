package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/update"
)

// rolloutSources starts a follower for every model with a rollout_channel:
// the retained MQTT topic (subscribed before the connection opens) and the
// rollout_url poller feed the same follower. A model whose rollout keys
// cannot be read follows nothing, loudly; the others go on.
func (a *Agent) rolloutSources() []func(context.Context) {
	a.rollouts = map[string]*follower{}
	var loops []func(context.Context)
	for i := range a.Config.Models {
		m := &a.Config.Models[i]
		if m.RolloutChannel == "" {
			continue
		}
		f, err := newFollower(a, m)
		if err != nil {
			slog.Error("agent: this model follows no rollout until this is fixed", "model", m.Name, "err", err)
			continue
		}
		a.rollouts[m.Name] = f
		if a.mqtt != nil {
			a.mqtt.Subscribe(report.RolloutTopic(a.Config.Platform.TopicPrefix, m.Name, m.RolloutChannel), f.onMQTT)
		}
		if m.RolloutURL != "" {
			p := &etagPoller{url: m.RolloutURL, every: time.Duration(a.Config.Agent.RolloutPoll), maxSize: rollout.MaxSize + 1,
				what: "rollout of " + m.Name, handle: func(b []byte) error { return f.offer(b, "GET "+m.RolloutURL) },
				client: a.platformClient(), token: a.token()}
			loops = append(loops, p.run)
		}
		loops = append(loops, f.run)
	}
	return loops
}

// taggedReporter stamps every event of a command's update with the command
// id and, when a rollout ordered it, the rollout id.
type taggedReporter struct {
	next             update.Reporter
	rollout, command string
	terminal         bool   // a terminal event was reported
	status           string // the last terminal event's status
}

func (r *taggedReporter) Report(ctx context.Context, ev *report.Event) {
	ev.RolloutID, ev.CommandID = r.rollout, r.command
	if ev.Terminal() {
		r.terminal, r.status = true, ev.Status
	}
	if r.next != nil {
		r.next.Report(ctx, ev)
	}
}
