package report

import (
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// subscriber is the platform's side: a real MQTT client on the events topic.
type subscriber struct {
	mu     sync.Mutex
	events []Event
}

func subscribe(t *testing.T, b *mqtttest.Broker, topic string) *subscriber {
	t.Helper()
	s := &subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("platform-" + t.Name()).SetCleanSession(false)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("platform connect: %v", tok.Error())
	}
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var ev Event
		if json.Unmarshal(m.Payload(), &ev) == nil {
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return s
}

func (s *subscriber) received() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func TestMQTTDeliversInOrder(t *testing.T) {
	b := mqtttest.Start(t)
	sub := subscribe(t, b, eventsTopic("modelslot", "d1"))
	o, _ := OpenOutbox(t.TempDir(), 0, "mqtt")
	sink := NewMQTTSink(MQTTOptions{Broker: b.URL()}, "modelslot", "d1")
	sink.Connect()
	t.Cleanup(sink.Close)
	drain(t, o, sink)
	appendN(t, o, StatusDownloading, StatusInstalling, StatusActivating, StatusConfirming, StatusSuccess)
	testutil.WaitFor(t, 15*time.Second, "5 events on the broker", func() bool { return len(sub.received()) >= 5 })
	assertInOrder(t, sub.received(), 5)
}

// TestMQTTBrokerDownForWholeUpdate: the broker is away while every event of an
// update is written; once it is back, all arrive, in order.
func TestMQTTBrokerDownForWholeUpdate(t *testing.T) {
	b := mqtttest.New(t) // not started: the platform is unreachable
	o, _ := OpenOutbox(t.TempDir(), 0, "mqtt")
	sink := NewMQTTSink(MQTTOptions{Broker: b.URL()}, "modelslot", "d2")
	sink.Connect()
	t.Cleanup(sink.Close)
	drain(t, o, sink)
	appendN(t, o, StatusDownloading, StatusInstalling, StatusActivating, StatusConfirming, StatusFailed, StatusRollingBack, StatusRolledBack)
	time.Sleep(300 * time.Millisecond)
	if o.Depth("mqtt") != 7 {
		t.Fatal("events left the outbox with no broker")
	}
	b.Start()
	sub := subscribe(t, b, eventsTopic("modelslot", "d2"))
	testutil.WaitFor(t, 30*time.Second, "7 events after the broker came back", func() bool { return o.Depth("mqtt") == 0 })
	testutil.WaitFor(t, 5*time.Second, "the subscriber to see them", func() bool { return len(sub.received()) >= 7 })
	assertInOrder(t, sub.received(), 7)
}

// TestTenThousandQueuedEventsAllDelivered: a long offline period.
func TestTenThousandQueuedEventsAllDelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 fsynced events: skipped in -short mode")
	}
	const n = 10000
	b := mqtttest.New(t)
	// The outbox lives on tmpfs here: this test is about delivery after a long
	// outage, not about how fast this machine's disk fsyncs 10,000 files.
	dir, err := os.MkdirTemp("/dev/shm", "outbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	o, _ := OpenOutbox(dir, 0, "mqtt")
	for range n {
		if err := o.Append(&Event{Status: StatusSuccess, DeviceID: "d3", Model: "demo"}); err != nil {
			t.Fatal(err)
		}
	}
	b.Start()
	sub := subscribe(t, b, eventsTopic("modelslot", "d3"))
	sink := NewMQTTSink(MQTTOptions{Broker: b.URL()}, "modelslot", "d3")
	sink.Connect()
	t.Cleanup(sink.Close)
	start := time.Now()
	drain(t, o, sink)
	testutil.WaitFor(t, 120*time.Second, "10,000 events", func() bool { return o.Depth("mqtt") == 0 })
	testutil.WaitFor(t, 10*time.Second, "the subscriber to see them", func() bool { return len(sub.received()) >= n })
	t.Logf("drained %d events in %s", n, time.Since(start).Round(time.Millisecond))
	assertInOrder(t, sub.received(), n)
}
