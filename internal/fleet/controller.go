// Package fleet is the rollout controller, `modelslot fleet serve`: it takes
// in every device's events and status from the broker, keeps devices,
// rollouts and the event history in its database (internal/fleet/store),
// moves each rollout through its stages — the next stage only after the soak
// time and success threshold, a halt the moment a failure threshold is crossed
// — and publishes every new revision of a rollout document, signed with the
// rollout key, as a retained MQTT message and a static file.
//
// The database is the truth: a decision is saved (optimistically, on the
// revision read) before it is published, and everything is published again at
// start, so a controller killed at any point resumes without repeating or
// skipping a stage. Only one controller acts per database (store.Leader).
// Device-side packages never import this one.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/verify"
)

// ErrLeadershipLost: the database session that made this process the leader
// is gone; it stopped acting and must be restarted (systemd does).
var ErrLeadershipLost = errors.New("fleet: leadership lost")

// Controller is one controller process.
type Controller struct {
	Fleet  config.Fleet
	Prefix string // MQTT topic prefix, [platform] topic_prefix
	DB     *store.DB
	Key    *verify.PrivateKey
	Now    func() time.Time // default time.Now
	HTTP   *http.Client     // fetches target manifests; default a 30 s client
	Conn   *netconf.Conn    // TLS and credentials for the broker; nil: plain, anonymous
	// APIToken, when set, is required as "Authorization: Bearer …" on /v1/.
	APIToken string
	// UI, when set, is served under /ui/ (and / leads there): the dashboard,
	// which checks the token itself with Authorized.
	UI http.Handler

	mu        sync.Mutex        // one decision at a time: ticks and API calls
	published map[string]uint64 // topic → revision last published there
	mqtt      mqtt.Client
	kick      chan struct{}
	// subscribed is closed once the broker granted the subscription to every
	// device's events: only then is the controller ready, since the first
	// session would miss what devices publish before it.
	subscribed     chan struct{}
	subscribedOnce sync.Once
	incoming       chan pending // parsed messages for the ingest loop
	metrics        *metrics
}

// New prepares a controller; Run starts it.
func New(f config.Fleet, prefix string, db *store.DB, key *verify.PrivateKey) *Controller {
	c := &Controller{Fleet: f, Prefix: prefix, DB: db, Key: key, Now: time.Now,
		HTTP: &http.Client{Timeout: 30 * time.Second}, published: map[string]uint64{}, kick: make(chan struct{}, 1),
		subscribed: make(chan struct{}), incoming: make(chan pending, maxBatch)}
	c.metrics = newMetrics(c)
	return c
}

// Run waits to be the leader, then serves until ctx ends or leadership is
// lost. ready is called once it leads and listens (for sd_notify and tests).
func (c *Controller) Run(ctx context.Context, ready func(addr string)) error {
	lost, release, err := c.DB.Leader(ctx, time.Second)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leadership := make(chan struct{})
	go func() {
		select {
		case <-lost:
			close(leadership)
			cancel()
		case <-ctx.Done():
		}
	}()
	ln, err := net.Listen("tcp", c.Fleet.Listen)
	if err != nil {
		return fmt.Errorf("fleet: listen on %s: %w; set [fleet] listen", c.Fleet.Listen, err)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	go c.ingestLoop(ctx)
	if err := c.connect(); err != nil {
		return err
	}
	defer c.mqtt.Disconnect(500)
	select {
	case <-c.subscribed:
	case <-ctx.Done():
		return c.stopped(leadership)
	}
	slog.Info("fleet controller leading", "database", c.DB.Dialect(), "listen", ln.Addr().String(), "broker", netconf.Redact(c.Fleet.Broker))
	if ready != nil {
		ready(ln.Addr().String())
	}
	c.loop(ctx)
	return c.stopped(leadership)
}

// stopped says why Run ends: a clean stop, or leadership lost.
func (c *Controller) stopped(leadership <-chan struct{}) error {
	select {
	case <-leadership:
		return ErrLeadershipLost
	default:
		return nil
	}
}

// loop evaluates every rollout each tick, and at once when an event of a
// rollout arrived (a failure threshold halts without waiting for the tick).
func (c *Controller) loop(ctx context.Context) {
	t := time.NewTicker(time.Duration(c.Fleet.Tick))
	defer t.Stop()
	for ctx.Err() == nil {
		if err := c.evaluateAll(ctx); err != nil && ctx.Err() == nil {
			slog.Error("fleet: evaluating rollouts failed; trying again next tick", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-c.kick:
		}
	}
}

func (c *Controller) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) now() time.Time { return c.Now().UTC() }
