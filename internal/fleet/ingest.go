package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/internal/report"
)

// clientID is the controller's MQTT identity: a persistent session under it
// keeps the events that arrive while the controller is down or restarting.
const clientID = "modelslot-fleet-controller"

// connect opens the broker connection and subscribes to every device's events
// and status. Messages are acknowledged only once recorded in the database,
// so an event the controller dies on is delivered again (and deduplicated by
// its event_id).
func (c *Controller) connect() error {
	if c.Fleet.Broker == "" {
		return fmt.Errorf("fleet: no broker: set [fleet] broker or [platform] mqtt_url")
	}
	broker, user, pass, _, err := netconf.Broker(c.Fleet.Broker)
	if err != nil {
		return err
	}
	conn := c.Conn
	if conn == nil {
		conn = &netconf.Conn{}
	}
	if user == "" {
		user, pass = conn.Username, conn.Password
	}
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetUsername(user).
		SetPassword(pass).
		SetClientID(clientID).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.onMessage(m) }).
		SetOnConnectHandler(func(cl mqtt.Client) {
			// Queued messages of the session may arrive before this returns;
			// the default handler takes them.
			filters := map[string]byte{c.Prefix + "/+/events": 1, c.Prefix + "/+/status": 1}
			tok := cl.SubscribeMultiple(filters, nil)
			go c.awaitSubscription(tok)
			go c.republish() // a broker that restarted without persistence lost the retained documents
		})
	if conn.TLS != nil {
		opts.SetTLSConfig(conn.TLS)
	}
	c.mqtt = mqtt.NewClient(opts)
	c.mqtt.Connect() // retries in the background until the broker answers
	return nil
}

// awaitSubscription marks the controller subscribed once the broker granted
// both filters; a refusal (an ACL without the controller's user) is logged,
// since the controller would see no device.
func (c *Controller) awaitSubscription(tok mqtt.Token) {
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		slog.Error("fleet: no answer to the subscription; it is sent again at the next reconnect", "err", tok.Error())
		return
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for filter, code := range st.Result() {
			if code == 0x80 {
				slog.Error("fleet: the broker refused the subscription; check the controller's ACL (docs/fleet.md)", "filter", filter)
				return
			}
		}
	}
	c.subscribedOnce.Do(func() { close(c.subscribed) })
}

// maxBatch bounds the messages recorded in one transaction. The broker sends
// at most its max_inflight_messages unacknowledged ones, so batches stay small
// unless that is raised.
const maxBatch = 500

// pending is a message parsed and waiting to be recorded, then acknowledged.
type pending struct {
	in  store.Incoming
	msg mqtt.Message
}

// onMessage parses a message and queues it for the ingest loop; what is not a
// modelslot message is acknowledged and dropped at once.
func (c *Controller) onMessage(m mqtt.Message) {
	in, ok := c.parse(m.Topic(), m.Payload())
	if !ok {
		m.Ack()
		return
	}
	c.incoming <- pending{in: in, msg: m}
}

// ingestLoop records queued messages in batches — one transaction, one fsync
// each — and acknowledges them only once committed, so an event the controller
// dies on is delivered again (and deduplicated by its event_id). A failing
// database is retried with backoff; meanwhile the broker holds the rest.
func (c *Controller) ingestLoop(ctx context.Context) {
	for {
		var batch []pending
		select {
		case <-ctx.Done():
			return
		case p := <-c.incoming:
			batch = append(batch, p)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-c.incoming:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		if !c.recordRetrying(ctx, batch) {
			return
		}
		for _, p := range batch {
			p.msg.Ack()
		}
	}
}

func (c *Controller) recordRetrying(ctx context.Context, batch []pending) bool {
	ins := make([]store.Incoming, len(batch))
	for i, p := range batch {
		ins[i] = p.in
	}
	backoff := 500 * time.Millisecond
	for {
		err := c.record(ctx, ins)
		if err == nil {
			return true
		}
		slog.Error("fleet: could not record device messages; retrying, the broker keeps the rest meanwhile", "messages", len(ins), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (c *Controller) record(ctx context.Context, ins []store.Incoming) error {
	added, err := c.DB.Ingest(ctx, ins)
	if err != nil {
		return err
	}
	c.metrics.events.Add(float64(added))
	for _, in := range ins {
		if in.Event != nil && in.Event.RolloutID != "" {
			c.wake() // a failure threshold halts without waiting for the tick
			break
		}
	}
	return nil
}

// parse turns an events or status message into what the store records.
func (c *Controller) parse(topic string, body []byte) (store.Incoming, bool) {
	now := c.now()
	switch {
	case strings.HasSuffix(topic, "/events"):
		var ev report.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" || ev.DeviceID == "" {
			slog.Warn("fleet: dropped an event that is not a modelslot event", "topic", topic, "err", err)
			return store.Incoming{}, false
		}
		return store.Incoming{Event: &ev, Body: body, Received: now}, true
	case strings.HasSuffix(topic, "/status"):
		var s statusMessage
		if err := json.Unmarshal(body, &s); err != nil || s.DeviceID == "" {
			return store.Incoming{}, false // a cleared retained message, or not ours
		}
		online := s.State == "online"
		in := store.Incoming{Presence: &online, DeviceID: s.DeviceID, Received: now}
		if s.Last != nil && s.Last.EventID != "" {
			// Already sent on the events topic; recording it again is a no-op
			// unless the controller missed it, and it names the device's model.
			in.Event = s.Last
			in.Body, _ = json.Marshal(s.Last)
		}
		return in, true
	}
	return store.Incoming{}, false
}

// ingestEvent records one event at once (tests, and nothing else).
func (c *Controller) ingestEvent(ctx context.Context, body []byte) error {
	in, ok := c.parse("x/events", body)
	if !ok {
		return nil
	}
	return c.record(ctx, []store.Incoming{in})
}

// statusMessage is the retained status a device keeps on <prefix>/<id>/status.
type statusMessage struct {
	State    string        `json:"state"`
	DeviceID string        `json:"device_id"`
	Last     *report.Event `json:"last_event"`
}
