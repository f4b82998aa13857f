package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/verify"
)

// channelPoller watches a model's configured channel (`source`) and queues an
// install when the channel's pointer changes. The command id is derived from
// the pointer's bytes, so one pointer is installed at most once however often it
// is seen (a version that was rolled back is not tried again until the channel
// moves). The signature is checked by the install itself, not here.
func channelPoller(model, url string, every time.Duration, in *Inbox) *etagPoller {
	return &etagPoller{url: url, every: every, maxSize: verify.MaxChannelEnvelope, what: "channel of " + model,
		handle: func(body []byte) error {
			sum := sha256.Sum256(body)
			id := "channel-" + model + "-" + hex.EncodeToString(sum[:8])
			added, err := in.Add(Command{ID: id, Action: ActionInstall, Model: model, Source: url, Local: true})
			if added {
				slog.Info("agent: the channel moved; install queued", "model", model, "command", id)
			}
			return err
		}}
}
