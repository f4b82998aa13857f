package fleet

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics of the fleet, read from the database at scrape time (so a standby
// or restarted controller reports the same numbers), plus a counter of events
// taken in by this process.
type metrics struct {
	reg    *prometheus.Registry
	events prometheus.Counter
}

var (
	devicesDesc = prometheus.NewDesc("modelslot_fleet_devices", "Devices by model, active version, last status and presence.",
		[]string{"model", "version", "status", "online"}, nil)
	stageDesc = prometheus.NewDesc("modelslot_fleet_rollout_stage", "The stage a rollout has opened (0-based).",
		[]string{"rollout", "model", "channel"}, nil)
	stateDesc = prometheus.NewDesc("modelslot_fleet_rollout_state", "1 for the state each rollout is in.",
		[]string{"rollout", "model", "channel", "state"}, nil)
	devicesInDesc = prometheus.NewDesc("modelslot_fleet_rollout_devices", "Devices of a rollout's opened stages by result.",
		[]string{"rollout", "result"}, nil)
	failuresDesc = prometheus.NewDesc("modelslot_fleet_rollout_failures", "Failed devices of a rollout by failure reason.",
		[]string{"rollout", "reason"}, nil)
)

func newMetrics(c *Controller) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "modelslot_fleet_events_ingested_total", Help: "Device events recorded (duplicates not counted)."})}
	m.reg.MustRegister(m.events, &fleetCollector{c: c})
	return m
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

type fleetCollector struct{ c *Controller }

func (f *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{devicesDesc, stageDesc, stateDesc, devicesInDesc, failuresDesc} {
		ch <- d
	}
}

func (f *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	devs, err := f.c.DB.Devices(ctx, "")
	if err != nil {
		slog.Warn("fleet: metrics: devices", "err", err)
		return
	}
	count := map[[4]string]int{}
	for _, d := range devs {
		count[[4]string{d.Model, d.Version, d.Status, strconv.FormatBool(d.Online)}]++
	}
	for k, n := range count {
		ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(n), k[:]...)
	}
	rs, err := f.c.DB.Rollouts(ctx)
	if err != nil {
		slog.Warn("fleet: metrics: rollouts", "err", err)
		return
	}
	for _, r := range rs {
		d := r.Doc
		ch <- prometheus.MustNewConstMetric(stageDesc, prometheus.GaugeValue, float64(d.Stage), d.ID, d.Model, d.Channel)
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, d.ID, d.Model, d.Channel, d.State)
		t, err := f.c.tally(ctx, r)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(devicesInDesc, prometheus.GaugeValue, float64(t.Cohort), d.ID, "cohort")
		ch <- prometheus.MustNewConstMetric(devicesInDesc, prometheus.GaugeValue, float64(t.Succeeded), d.ID, "succeeded")
		ch <- prometheus.MustNewConstMetric(devicesInDesc, prometheus.GaugeValue, float64(t.Failed), d.ID, "failed")
		for reason, n := range t.Failures {
			ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(n), d.ID, reason)
		}
	}
}
