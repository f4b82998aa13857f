package agent

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
)

// metrics are the agent's Prometheus metrics. Update results are counted from
// the events in each model's outbox (a cursor of their own), so updates run by
// hand with `modelslot install` are counted too.
type metrics struct {
	reg         *prometheus.Registry
	updates     *prometheus.CounterVec
	rollbacks   *prometheus.CounterVec
	manual      *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	sentEvents  *prometheus.CounterVec
	commands    *prometheus.CounterVec
	downloaded  *prometheus.CounterVec
	corrupt     *prometheus.CounterVec
}

// observerCursor is the outbox cursor of the metrics observer. It is not a
// sink: it does not hold events back from removal.
const observerCursor = "metrics"

func newMetrics(cfg *config.Config) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_updates_total",
			Help: "Updates that ended, by result (success, failed, rolled_back)."}, []string{"model", "result"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_rollbacks_total",
			Help: "Reverts of failed updates, by failure reason (manual rollbacks are modelslot_manual_rollbacks_total)."}, []string{"model", "reason"}),
		manual: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_manual_rollbacks_total",
			Help: "Rollbacks a person or the platform asked for (rollback, mark-bad)."}, []string{"model"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "modelslot_last_success_timestamp_seconds",
			Help: "When the last update of the model succeeded."}, []string{"model"}),
		sentEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_events_sent_total",
			Help: "Events delivered to the platform, by sink."}, []string{"model", "sink"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_commands_total",
			Help: "Platform commands carried out, by action and result."}, []string{"action", "result"}),
		downloaded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_download_bytes_total",
			Help: "Bytes downloaded (compressed, on the wire) by installs the agent ran."}, []string{"model"}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "modelslot_download_corrupt_total",
			Help: "Chunk downloads whose bytes failed their digest or size (a captive portal, a broken proxy or mirror); each is fetched again, up to 3 times."}, []string{"model"}),
	}
	m.reg.MustRegister(m.updates, m.rollbacks, m.manual, m.lastSuccess, m.sentEvents, m.commands, m.downloaded, m.corrupt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&versionCollector{cfg: cfg})
	m.initAtZero(cfg)
	return m
}

// updateResults are the results modelslot_updates_total counts.
var updateResults = []string{report.StatusSuccess, report.StatusFailed, report.StatusRolledBack}

// initAtZero creates every series the device can report, at 0: a series
// that appears only at its first increment has no earlier sample, so
// increase() over it misses that first failure or rollback.
func (m *metrics) initAtZero(cfg *config.Config) {
	for _, mod := range cfg.Models {
		for _, r := range updateResults {
			m.updates.WithLabelValues(mod.Name, r)
		}
		for _, code := range reason.All {
			if code != reason.Manual {
				m.rollbacks.WithLabelValues(mod.Name, string(code))
			}
		}
		m.manual.WithLabelValues(mod.Name)
		m.corrupt.WithLabelValues(mod.Name)
	}
	for _, action := range []string{ActionInstall, ActionRollback, ActionMarkGood, ActionMarkBad} {
		for _, result := range []string{"ok", "failed", "rejected", report.StatusNothingToDo} {
			m.commands.WithLabelValues(action, result)
		}
	}
	m.commands.WithLabelValues("unknown", "rejected")
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) sent(model, sink string) func(int) {
	c := m.sentEvents.WithLabelValues(model, sink)
	return func(n int) { c.Add(float64(n)) }
}

// downloadProgress turns an install's progress (bytes done so far) into
// increments of the download counter.
func (m *metrics) downloadProgress(model string) func(done, total int64) {
	c := m.downloaded.WithLabelValues(model)
	var last int64
	return func(done, _ int64) {
		if done > last {
			c.Add(float64(done - last))
			last = done
		}
	}
}

// corruptDownload counts one download of a chunk of the model whose bytes
// were corrupt.
func (m *metrics) corruptDownload(model string) func() {
	c := m.corrupt.WithLabelValues(model)
	return c.Inc
}

// command counts a command that ran, by what its terminal event said:
// nothing_to_do (and rejected, for a command refused at run time) apart from
// ok and failed, so a rollback with nothing to roll back to is no failure.
func (m *metrics) command(action, status string, err error) {
	result := "ok"
	switch {
	case status == report.StatusNothingToDo, status == report.StatusRejected:
		result = status
	case err != nil:
		result = "failed"
	}
	m.commands.WithLabelValues(action, result).Inc()
}

// rejected counts a refused platform command; an action the device does not
// know is counted as "unknown", so a platform cannot grow the label set.
func (m *metrics) rejected(action string) {
	if !knownAction(action) {
		action = "unknown"
	}
	m.commands.WithLabelValues(action, "rejected").Inc()
}

// watchOutbox exports the number of events waiting for each sink.
func (m *metrics) watchOutbox(model string, o *report.Outbox, sinks []report.Sink) {
	for _, s := range sinks {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "modelslot_outbox_depth",
			Help: "Events waiting for delivery.", ConstLabels: prometheus.Labels{"model": model, "sink": s.Name()}},
			func() float64 { return float64(o.Depth(s.Name())) }))
	}
}

// observe counts terminal events as they appear in the outbox.
func (m *metrics) observe(ctx context.Context, model string, o *report.Outbox) {
	for ctx.Err() == nil {
		changed := o.Changed()
		evs, err := o.Pending(observerCursor, 500)
		for _, ev := range evs {
			m.count(model, ev)
		}
		if err == nil && len(evs) > 0 {
			o.Ack(observerCursor, evs[len(evs)-1].Sequence)
			continue
		}
		sleepCtx(ctx, 2*time.Second, changed)
	}
}

// count counts one event. A rollback someone asked for is counted apart: it
// is not an update that failed. Rejected and nothing_to_do answers started
// no update.
func (m *metrics) count(model string, ev *report.Event) {
	if ev.Status == report.StatusRolledBack && ev.FailureReason == string(reason.Manual) {
		m.manual.WithLabelValues(model).Inc()
		return
	}
	if slices.Contains(updateResults, ev.Status) {
		m.updates.WithLabelValues(model, ev.Status).Inc()
	}
	switch ev.Status {
	case report.StatusSuccess:
		m.lastSuccess.WithLabelValues(model).Set(float64(ev.Timestamp.Unix()))
	case report.StatusRolledBack:
		m.rollbacks.WithLabelValues(model, ev.FailureReason).Inc()
	}
}

// versionCollector reads each model's state at scrape time, so the exported
// active version is never stale.
type versionCollector struct{ cfg *config.Config }

var versionDesc = prometheus.NewDesc("modelslot_active_version_info",
	"The version each model serves (value 1), with its slot and whether a trial runs.",
	[]string{"model", "version", "slot", "trial"}, nil)

func (c *versionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- versionDesc }

func (c *versionCollector) Collect(ch chan<- prometheus.Metric) {
	for i := range c.cfg.Models {
		m := &c.cfg.Models[i]
		v, err := slots.OpenView(session.StoreConfig(c.cfg, m))
		if err != nil {
			continue
		}
		st := v.State()
		if st.Active == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, 1,
			m.Name, st.Slots[st.Active].Version, st.Active, strconv.FormatBool(st.Trial != nil))
	}
}
