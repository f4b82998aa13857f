package mqtttest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Subscriber plays the platform: a real MQTT client that records every message
// on a topic.
type Subscriber struct {
	mu       sync.Mutex
	messages [][]byte
	client   mqtt.Client
}

// Subscribe connects to b and subscribes to topic with QoS 1.
func Subscribe(t *testing.T, b *Broker, topic string) *Subscriber {
	t.Helper()
	s := &Subscriber{client: Connect(t, b, "platform-sub")}
	tok := s.client.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		s.messages = append(s.messages, m.Payload())
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return s
}

// Messages returns what arrived so far, in order.
func (s *Subscriber) Messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.messages...)
}

// clients numbers client ids: a broker disconnects a client whose id another
// client takes.
var clients atomic.Int64

// Connect returns a connected client for the test's own use (publishing
// commands, say); it is disconnected when the test ends.
func Connect(t *testing.T, b *Broker, id string) mqtt.Client {
	t.Helper()
	clients.Add(1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("%s-%d", id, clients.Load())))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to the broker: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Publish sends payload on topic with QoS 1 and waits for the broker's ack.
func Publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}
