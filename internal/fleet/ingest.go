package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

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

func (c *Controller) onMessage(m mqtt.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	switch {
	case strings.HasSuffix(m.Topic(), "/events"):
		err = c.ingestEvent(ctx, m.Payload())
	case strings.HasSuffix(m.Topic(), "/status"):
		err = c.ingestStatus(ctx, m.Payload())
	}
	if err != nil {
		slog.Error("fleet: could not record a message; not acknowledging it, the broker delivers it again", "topic", m.Topic(), "err", err)
		return
	}
	m.Ack()
}

func (c *Controller) ingestEvent(ctx context.Context, body []byte) error {
	var ev report.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.EventID == "" || ev.DeviceID == "" {
		slog.Warn("fleet: dropped an event that is not a modelslot event", "err", err)
		return nil
	}
	added, err := c.DB.AddEvent(ctx, &ev, body, c.now())
	if err != nil {
		return err
	}
	if added {
		c.metrics.events.Inc()
		if ev.RolloutID != "" {
			c.wake()
		}
	}
	return nil
}

// statusMessage is the retained status a device keeps on <prefix>/<id>/status.
type statusMessage struct {
	State    string        `json:"state"`
	DeviceID string        `json:"device_id"`
	Last     *report.Event `json:"last_event"`
}

func (c *Controller) ingestStatus(ctx context.Context, body []byte) error {
	var s statusMessage
	if err := json.Unmarshal(body, &s); err != nil || s.DeviceID == "" {
		return nil // a cleared retained message, or not ours
	}
	if s.Last != nil && s.Last.EventID != "" {
		// Already sent on the events topic; recording it again is a no-op
		// unless the controller missed it, and it names the device's model.
		b, _ := json.Marshal(s.Last)
		if _, err := c.DB.AddEvent(ctx, s.Last, b, c.now()); err != nil {
			return err
		}
	}
	return c.DB.SetPresence(ctx, s.DeviceID, s.State == "online", c.now())
}
