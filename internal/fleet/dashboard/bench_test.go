package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
)

// BenchmarkOverview renders the overview fragment of a fleet that went
// through a rollout (6 events a device), as every open page does every 2 s:
// the cost of one poll, 1,000 against 10,000 devices.
func BenchmarkOverview(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n, "devices"), func(b *testing.B) {
			r := newRig(b)
			r.rollout("r1", rollout.StateRunning, 1)
			var batch []store.Incoming
			flush := func() {
				if _, err := r.c.DB.Ingest(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
			for i := range n {
				for j, st := range []string{report.StatusSuccess, report.StatusDownloading, report.StatusInstalling,
					report.StatusActivating, report.StatusConfirming, report.StatusSuccess} {
					v := "v1"
					if j >= 4 {
						v = "v2"
					}
					rid := "r1"
					if j == 0 {
						rid = ""
					}
					ev := &report.Event{Event: report.EventType, EventID: fmt.Sprint(i, "-", j), DeviceID: fmt.Sprint("dev-", i),
						Model: "demo", Status: st, CurrentVersion: v, TargetVersion: "v2", RolloutID: rid, Timestamp: t0}
					batch = append(batch, store.Incoming{Event: ev, Body: []byte(`{}`), Received: t0.Add(time.Duration(i*6+j) * time.Millisecond)})
				}
				if len(batch) >= 3000 {
					flush()
				}
			}
			flush()
			b.ResetTimer()
			for b.Loop() {
				if code, _, _ := r.get("/ui/fragments/overview", token); code != http.StatusOK {
					b.Fatalf("overview: %d", code)
				}
			}
		})
	}
}
