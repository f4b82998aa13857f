// Package agent is modelslot's daemon: at start it recovers every model; then it
// delivers queued events to the platform, takes commands from it (MQTT, or HTTP
// polling), runs them one at a time in order, sends heartbeats, serves
// Prometheus metrics, and keeps systemd's watchdog fed while its loops are
// alive: the command worker and the restore loop beat on every turn (and on
// every downloaded chunk), and a loop silent past its bound (Alive) stops the
// pings, so systemd restarts a wedged agent. Reporting never decides an
// update: an unreachable platform only delays events.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
)

// Agent is one running daemon.
type Agent struct {
	Config  *config.Config
	Inbox   *Inbox
	Install Installer // nil: the real install (session.InstallSource); tests set a fake
	// CommandBound is how long one command may run without a sign of
	// progress before the agent counts its worker as wedged (Alive);
	// 0 = derived from the models' health settings.
	CommandBound time.Duration
	Heartbeat    time.Duration // retained status refresh; default 60s
	RetryMin     time.Duration // first retry of a command that may succeed later
	Metrics      string        // listen address for /metrics; "" = off

	conn     *netconf.Conn // TLS, credentials and token for the platform
	live     *liveness
	metrics  *metrics
	mqtt     *report.MQTTSink
	outboxes map[string]*report.Outbox // by model: the instances the drainers watch
	rollouts map[string]*follower      // by model, for the models that follow a rollout
	// answered names the queued commands whose terminal event recovery
	// reported (a trial they started, resumed and ended): written before
	// the worker starts, only read after.
	answered map[string]bool
	// outcome is the status of the terminal event each running command's run
	// reported, so its counter says what its answer said (worker goroutine only).
	outcome map[string]string
	// deviceOutbox carries the answers to commands for a model the device
	// does not have (every other event goes through its model's outbox).
	deviceOutbox *report.Outbox
	// recovered holds the commands whose update recovery ended (committed or
	// reverted) at start, with how they ended: done, never run again.
	recovered map[string]error
}

// New prepares an agent for cfg; its inbox lives in <state_root>/inbox.
func New(cfg *config.Config) (*Agent, error) {
	p := cfg.Platform
	user := p.Username
	if user == "" && p.PasswordFile != "" {
		user = cfg.DeviceID // the per-device ACL names devices by username
	}
	conn, err := netconf.Load(p.Files(), user)
	if err != nil {
		return nil, fmt.Errorf("%w: [platform] %w", config.ErrConfig, err)
	}
	in, err := OpenInbox(filepath.Join(cfg.StateRoot, config.InboxDir))
	if err != nil {
		return nil, err
	}
	return &Agent{Config: cfg, Inbox: in, Heartbeat: time.Minute, conn: conn, live: newLiveness(),
		outcome: map[string]string{}, recovered: map[string]error{}}, nil
}

// Alive reports whether the agent's own loops are making progress: the
// systemd watchdog is fed only while they are (systemd.RunWatchdog).
func (a *Agent) Alive() bool { return a.live.alive() }

// The loops Alive tracks.
const (
	loopWork    = "commands"
	loopRestore = "restores"
)

// commandBound is how long one command (or one restore) may go without a
// beat: the longest health confirmation a model can take (activation, window,
// checks, and a restore after it), with room to spare. Downloads beat on
// every chunk, so their length does not count.
func (a *Agent) commandBound() time.Duration {
	if a.CommandBound > 0 {
		return a.CommandBound
	}
	bound := 10 * time.Minute
	for _, m := range a.Config.Models {
		h := m.Health
		start := max(time.Duration(h.StartTimeout), time.Minute)
		if b := 3*start + time.Duration(h.ConfirmWindow) + 5*time.Minute; b > bound {
			bound = b
		}
	}
	return bound
}

// Run recovers every model, then runs until ctx is cancelled (SIGTERM). ready is
// called once the agent serves (for sd_notify READY=1).
func (a *Agent) Run(ctx context.Context, ready func()) error {
	a.metrics = newMetrics(a.Config)
	a.outboxes = map[string]*report.Outbox{}
	a.answered = map[string]bool{}
	a.recoverAll(ctx)
	var wg sync.WaitGroup
	sinks := a.sinks()
	dev, err := session.OpenDeviceOutbox(a.Config)
	if err != nil {
		return err
	}
	a.deviceOutbox = dev
	for _, s := range sinks {
		d := &report.Drainer{Outbox: dev, Sink: s}
		wg.Go(func() { d.Run(ctx) })
	}
	for i := range a.Config.Models {
		m := &a.Config.Models[i]
		o, err := session.OpenOutbox(a.Config, m)
		if err != nil {
			return err
		}
		a.outboxes[m.Name] = o
		a.metrics.watchOutbox(m.Name, o, sinks)
		for _, s := range sinks {
			d := &report.Drainer{Outbox: o, Sink: s, OnSent: a.metrics.sent(m.Name, s.Name())}
			wg.Go(func() { d.Run(ctx) })
		}
		wg.Go(func() { a.metrics.observe(ctx, m.Name, o) })
	}
	a.live.register(loopWork, a.commandBound())
	a.live.register(loopRestore, a.commandBound())
	wg.Go(func() { defer a.live.done(loopWork); a.work(ctx) })
	wg.Go(func() { defer a.live.done(loopRestore); a.restoreLoop(ctx) })
	for _, s := range a.commandSources() {
		wg.Go(func() { s(ctx) })
	}
	if a.mqtt != nil {
		a.mqtt.Connect() // after the command subscription is registered
		wg.Go(func() { a.heartbeat(ctx) })
	}
	srv := a.serveMetrics()
	if ready != nil {
		ready()
	}
	slog.Info("agent running", "device", a.Config.DeviceID, "models", len(a.Config.Models), "sinks", len(sinks))
	<-ctx.Done()
	if srv != nil {
		srv.Close()
	}
	wg.Wait()
	if a.mqtt != nil {
		a.mqtt.Close()
	}
	slog.Info("agent stopped")
	return nil
}

// recoverAll opens and closes every model: that recovers interrupted steps,
// resumes interrupted trials and tries pending restores once (restoreLoop
// keeps trying). A model that cannot be opened is logged and left;
// the others still run.
func (a *Agent) recoverAll(ctx context.Context) {
	for i := range a.Config.Models {
		m := &a.Config.Models[i]
		d, err := session.OpenToEndTrial(ctx, a.Config, m, "agent recovery")
		if err != nil {
			slog.Error("agent: recovery of a model failed; its commands will fail until it is fixed", "model", m.Name, "err", err)
			continue
		}
		// A trial the agent was running when it stopped belongs to the
		// command still queued first for the model: its resumed events carry
		// that command's id, and its rollout's.
		c, ok := a.firstPending(m.Name)
		rep := &taggedReporter{next: d.Updater.Reporter, rollout: c.Rollout, command: c.ID}
		if ok {
			d.Updater.Reporter = rep
		}
		err = d.Recover(ctx)
		if err != nil && ctx.Err() == nil {
			slog.Warn("agent: recovery of a model did not finish; it is tried again", "model", m.Name, "err", err)
		}
		d.Close()
		if ok && rep.terminal {
			// Recovery ended the command's update (committed, or reverted:
			// the version failed): the command is done. Running it again
			// would install the version that just failed once more.
			// The work loop finishes it, once the rollout followers that
			// must learn its outcome are running.
			a.answered[c.ID] = true
			a.outcome[c.ID] = rep.status
			a.recovered[c.ID] = recoveredErr(rep.status, err)
		}
	}
}

// firstPending is the first queued command for model, if any.
func (a *Agent) firstPending(model string) (Command, bool) {
	_, cmds := a.Inbox.Pending()
	for _, c := range cmds {
		if c.Model == model {
			return c, true
		}
	}
	return Command{}, false
}

// recoveredErr is how a command whose update recovery ended is counted: a
// revert is a failed command.
func recoveredErr(status string, err error) error {
	if err == nil && status != report.StatusSuccess {
		err = update.ErrRolledBack
	}
	return err
}

func (a *Agent) sinks() []report.Sink {
	p := a.Config.Platform
	var sinks []report.Sink
	if p.MQTTURL != "" {
		a.mqtt = report.NewMQTTSink(a.mqttOptions(), p.TopicPrefix, a.Config.DeviceID)
		sinks = append(sinks, a.mqtt)
	}
	if p.HTTPURL != "" {
		sinks = append(sinks, report.NewHTTPSink(p.HTTPURL, report.HTTPOptions{TLS: a.conn.TLS, Token: a.conn.Token}))
	}
	return sinks
}

// mqttOptions: credentials in the URL (redacted in every message) win over
// username and password_file.
func (a *Agent) mqttOptions() report.MQTTOptions {
	broker, user, pass, _, _ := netconf.Broker(a.Config.Platform.MQTTURL) // checked by config
	o := report.MQTTOptions{Broker: broker, TLS: a.conn.TLS, Username: a.conn.Username, Password: a.conn.Password, Models: a.modelStatuses}
	if user != "" {
		o.Username, o.Password = user, pass
	}
	return o
}

// platformClient is the HTTP client for the platform's endpoints (command
// list, rollout document): the configured CAs, and the token by the poller.
func (a *Agent) platformClient() *http.Client {
	c := &http.Client{Timeout: 30 * time.Second}
	if a.conn != nil && a.conn.TLS != nil {
		c.Transport = &http.Transport{TLSClientConfig: a.conn.TLS, Proxy: http.ProxyFromEnvironment}
	}
	return c
}

func (a *Agent) token() string {
	if a.conn == nil {
		return ""
	}
	return a.conn.Token
}

// heartbeat refreshes the retained status so the platform can tell a quiet
// device from a gone one.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.mqtt.Heartbeat()
		}
	}
}

func (a *Agent) serveMetrics() *http.Server {
	if a.Metrics == "" {
		return nil
	}
	srv := &http.Server{Addr: a.Metrics, Handler: a.metrics.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("agent: metrics server stopped", "addr", a.Metrics, "err", err)
		}
	}()
	return srv
}

// modelStatuses reads each model's state for the retained MQTT status; a
// model whose state cannot be read is listed with what is known (its name).
func (a *Agent) modelStatuses() []report.ModelStatus {
	var out []report.ModelStatus
	for i := range a.Config.Models {
		m := &a.Config.Models[i]
		ms := report.ModelStatus{Model: m.Name}
		if v, err := slots.OpenView(session.StoreConfig(a.Config, m)); err == nil {
			st := v.State()
			if s := st.Slots[st.Active]; s != nil {
				ms.ActiveVersion = s.Version
			}
			if s := st.Slots[st.Previous]; s != nil {
				ms.PreviousVersion = s.Version
			}
			if st.Trial != nil {
				ms.Trial = st.Trial.Version
			}
			if f := st.LastFailure; f != nil {
				ms.LastFailure = &report.FailureStatus{Version: f.Version, Reason: string(f.Code), Detail: f.Reason, At: f.At}
			}
		}
		out = append(out, ms)
	}
	return out
}
