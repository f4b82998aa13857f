package report

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// collector is a real loopback HTTP server that records events; fail decides
// per request whether to answer 500.
type collector struct {
	mu     sync.Mutex
	events []Event
	hits   atomic.Int64
	fail   func(n int64) bool
	srv    *http.Server
	addr   string
}

func startCollector(t *testing.T, addr string, fail func(int64) bool) *collector {
	t.Helper()
	c := &collector{fail: fail}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.hits.Add(1)
		if c.fail != nil && c.fail(n) {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || r.Header.Get("Idempotency-Key") != ev.EventID {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
	return c
}

func (c *collector) received() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

func drain(t *testing.T, o *Outbox, s Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := &Drainer{Outbox: o, Sink: s, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Poll: 50 * time.Millisecond}
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func assertInOrder(t *testing.T, evs []Event, n int) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	unique := 0
	for _, ev := range evs {
		if seen[ev.EventID] { // a redelivery: harmless, same id
			continue
		}
		seen[ev.EventID] = true
		unique++
		if ev.Sequence <= last {
			t.Fatalf("event %d arrived after %d", ev.Sequence, last)
		}
		last = ev.Sequence
	}
	if unique != n {
		t.Fatalf("got %d distinct events, want %d", unique, n)
	}
}

func TestHTTPSinkDeliversInOrderThroughFailures(t *testing.T) {
	everySecond := func(n int64) bool { return n%2 == 0 }
	c := startCollector(t, "127.0.0.1:0", everySecond)
	o, _ := OpenOutbox(t.TempDir(), 0, "http")
	drain(t, o, NewHTTPSink("http://"+c.addr+"/events", HTTPOptions{}))
	appendN(t, o, StatusDownloading, StatusInstalling, StatusActivating, StatusConfirming, StatusSuccess)
	testutil.WaitFor(t, 10*time.Second, "5 events", func() bool { return o.Depth("http") == 0 })
	assertInOrder(t, c.received(), 5)
}

func TestHTTPSinkWaitsForCollectorThatIsDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet
	o, _ := OpenOutbox(t.TempDir(), 0, "http")
	drain(t, o, NewHTTPSink("http://"+addr+"/events", HTTPOptions{}))
	appendN(t, o, StatusDownloading, StatusInstalling, StatusSuccess)
	time.Sleep(300 * time.Millisecond)
	if o.Depth("http") != 3 {
		t.Fatal("events left the outbox while the collector was down")
	}
	c := startCollector(t, addr, nil)
	testutil.WaitFor(t, 15*time.Second, "delivery after the collector came up", func() bool { return o.Depth("http") == 0 })
	assertInOrder(t, c.received(), 3)
}
