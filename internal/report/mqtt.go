package report

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTT topics (DESIGN.md § Events): <prefix>/<device>/{events,status,commands}.
func eventsTopic(prefix, device string) string   { return prefix + "/" + device + "/events" }
func statusTopic(prefix, device string) string   { return prefix + "/" + device + "/status" }
func CommandsTopic(prefix, device string) string { return prefix + "/" + device + "/commands" }

// RolloutTopic carries the retained, signed rollout document of a model's
// channel (docs/fleet.md). Its first level, "rollouts", is reserved as a
// device id so that no device's own topics can overlap it.
func RolloutTopic(prefix, model, channel string) string {
	return prefix + "/rollouts/" + model + "/" + channel
}

// ErrNotConnected means the broker cannot be reached right now; events wait.
var ErrNotConnected = errors.New("not connected to the MQTT broker")

// MQTTSink publishes events with QoS 1 (the broker's PUBACK is the
// acknowledgement), keeps a retained status message up to date, and leaves a
// last will on the status topic so the platform sees a device that vanished.
type MQTTSink struct {
	client         mqtt.Client
	prefix, device string
	timeout        time.Duration

	models func() []ModelStatus

	mu   sync.Mutex
	last *Event                        // last event sent, repeated in heartbeats
	subs map[string]func(mqtt.Message) // re-subscribed at every connect
}

// statusMessage is the retained message on the status topic.
type statusMessage struct {
	State     string        `json:"state"` // online | offline
	DeviceID  string        `json:"device_id"`
	Timestamp time.Time     `json:"timestamp"`
	Models    []ModelStatus `json:"models"`
	Last      *Event        `json:"last_event,omitempty"`
}

// ModelStatus is one model's entry in the retained status: what it serves,
// what it would go back to, the version under trial and its last failure.
type ModelStatus struct {
	Model           string         `json:"model"`
	ActiveVersion   string         `json:"active_version"`
	PreviousVersion string         `json:"previous_version"`
	Trial           string         `json:"trial,omitempty"` // the version under trial; empty: none
	LastFailure     *FailureStatus `json:"last_failure,omitempty"`
}

// FailureStatus is a model's last failed version and why (a reason code).
type FailureStatus struct {
	Version string    `json:"version"`
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail"`
	At      time.Time `json:"at"`
}

// MQTTOptions say how to reach the broker.
type MQTTOptions struct {
	Broker             string      // tcp://host:port or ssl://host:port (netconf.Broker makes it from mqtt_url)
	TLS                *tls.Config // for ssl://; nil: the system's roots
	Username, Password string      // empty: anonymous
	// Models reports each model's state for the retained status and the
	// last will; nil: the status lists no models.
	Models func() []ModelStatus
}

// NewMQTTSink prepares a sink; Connect starts it. Subscribe before Connect, so
// no message can arrive before its handler is in place.
func NewMQTTSink(o MQTTOptions, prefix, device string) *MQTTSink {
	s := &MQTTSink{prefix: prefix, device: device, timeout: 10 * time.Second, subs: map[string]func(mqtt.Message){}, models: o.Models}
	// The will is set at each connection: its timestamp is when the device
	// last (re)connected, and its models what they were then. paho hands
	// the reconnect handler the client's own options for this.
	will, _ := json.Marshal(s.status("offline"))
	refreshWill := func(_ mqtt.Client, o *mqtt.ClientOptions) {
		b, _ := json.Marshal(s.status("offline"))
		o.SetWill(statusTopic(prefix, device), string(b), 1, true)
	}
	opts := mqtt.NewClientOptions().
		AddBroker(strings.Replace(o.Broker, "mqtt://", "tcp://", 1)).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetClientID("modelslot-"+device).
		SetCleanSession(false). // the broker keeps our command subscription while we are away
		SetWill(statusTopic(prefix, device), string(will), 1, true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAutoAckDisabled(true). // a command is acknowledged only once it is on disk
		SetOnConnectHandler(s.onConnect).
		SetReconnectingHandler(refreshWill)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	s.client = mqtt.NewClient(opts)
	return s
}

// Connect connects in the background and keeps retrying (SetConnectRetry): the
// sink works offline and delivers once the broker is reachable.
func (s *MQTTSink) Connect() { s.client.Connect() }

// Client is the underlying connection, shared with the command inbox.
func (s *MQTTSink) Client() mqtt.Client { return s.client }

// Name is the cursor name of the MQTT sink.
func (s *MQTTSink) Name() string { return SinkMQTT }

// Send publishes events in order and waits for each PUBACK.
func (s *MQTTSink) Send(ctx context.Context, events []*Event) (int, error) {
	if !s.client.IsConnectionOpen() {
		return 0, ErrNotConnected
	}
	for i, ev := range events {
		payload, err := json.Marshal(ev)
		if err != nil {
			return i, err
		}
		if err := s.wait(ctx, s.client.Publish(eventsTopic(s.prefix, s.device), 1, false, payload)); err != nil {
			return i, fmt.Errorf("mqtt: publish event %d: %w", ev.Sequence, err)
		}
	}
	s.publishStatus(events[len(events)-1])
	return len(events), nil
}

func (s *MQTTSink) onConnect(c mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, h := range s.subs {
		c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { h(m) })
	}
	s.publishStatusLocked()
}

// Subscribe receives the messages of topic (QoS 1) now and after every
// reconnect. The handler must call m.Ack() once it has made the message durable
// (or decided to drop it); an unacknowledged message is redelivered.
func (s *MQTTSink) Subscribe(topic string, h func(m mqtt.Message)) {
	s.mu.Lock()
	s.subs[topic] = h
	s.mu.Unlock()
	if s.client.IsConnectionOpen() {
		s.client.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { h(m) })
	}
}

// Heartbeat refreshes the retained online status.
func (s *MQTTSink) Heartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publishStatusLocked()
}

func (s *MQTTSink) publishStatus(last *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last != nil {
		s.last = last
	}
	s.publishStatusLocked()
}

// status is the status document now, in the given state.
func (s *MQTTSink) status(state string) statusMessage {
	m := statusMessage{State: state, DeviceID: s.device, Timestamp: time.Now().UTC(), Models: []ModelStatus{}}
	if s.models != nil {
		m.Models = append(m.Models, s.models()...)
	}
	return m
}

func (s *MQTTSink) publishStatusLocked() {
	m := s.status("online")
	m.Last = s.last
	b, _ := json.Marshal(m)
	s.client.Publish(statusTopic(s.prefix, s.device), 1, true, b) // best effort; the next event updates it again
}

func (s *MQTTSink) wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.timeout):
		return fmt.Errorf("no PUBACK within %s", s.timeout)
	}
}

// Close says goodbye cleanly: a retained offline status, then disconnect.
func (s *MQTTSink) Close() {
	b, _ := json.Marshal(s.status("offline"))
	if s.client.IsConnectionOpen() {
		s.client.Publish(statusTopic(s.prefix, s.device), 1, true, b).WaitTimeout(2 * time.Second)
	}
	s.client.Disconnect(500)
}
