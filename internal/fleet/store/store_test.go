package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/pgtest"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// backends runs f against a fresh SQLite file and a fresh PostgreSQL cluster:
// one schema and one set of queries must behave the same on both.
func backends(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, filepath.Join(t.TempDir(), "fleet.db")) })
	t.Run("postgres", func(t *testing.T) { f(t, pgtest.Start(t, true).URL()) })
}

func open(t *testing.T, url string) *DB {
	t.Helper()
	db, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func event(id, device, status, rolloutID string) *report.Event {
	return &report.Event{Event: report.EventType, EventID: id, DeviceID: device, Model: "demo", Status: status,
		RolloutID: rolloutID, TargetVersion: "v2", CurrentVersion: "v1", Timestamp: t0}
}

func TestStore(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		open(t, url) // a second open finds the schema migrated and changes nothing
		t.Run("events are recorded once and move outcomes forward only", func(t *testing.T) {
			steps := []struct {
				ev   *report.Event
				new  bool
				want string
			}{
				{event("e1", "d1", report.StatusDownloading, "r1"), true, OutcomeInProgress},
				{event("e1", "d1", report.StatusDownloading, "r1"), false, OutcomeInProgress}, // redelivered
				{event("e2", "d1", report.StatusRolledBack, "r1"), true, OutcomeFailed},
				{event("e3", "d1", report.StatusSuccess, "r1"), true, OutcomeFailed}, // terminal is final
			}
			for _, s := range steps {
				added, err := db.AddEvent(ctx, s.ev, []byte(`{}`), t0)
				if err != nil || added != s.new {
					t.Fatalf("AddEvent(%s) = %v, %v; want new=%v", s.ev.EventID, added, err, s.new)
				}
				outs, err := db.Outcomes(ctx, "r1")
				if err != nil || len(outs) != 1 || outs[0].Status != s.want {
					t.Fatalf("after %s: outcomes %+v, %v; want %s", s.ev.EventID, outs, err, s.want)
				}
			}
			if n, _ := db.EventCount(ctx, "r1"); n != 3 {
				t.Fatalf("%d events of r1, want 3", n)
			}
			evs, err := db.Events(ctx, "r1", "d1", 2)
			if err != nil || len(evs) != 2 || evs[0].EventID != "e1" || evs[1].Status != report.StatusRolledBack {
				t.Fatalf("Events(r1, d1, 2) = %+v, %v", evs, err)
			}
			refusal := &report.Event{Event: report.RolloutEventType, EventID: "e4", DeviceID: "d2", Model: "demo",
				Status: report.StatusRefused, RolloutID: "r1", FailureReason: rollout.ReasonStale}
			if _, err := db.AddEvent(ctx, refusal, []byte(`{}`), t0); err != nil {
				t.Fatal(err)
			}
			for _, answer := range []*report.Event{
				{Event: report.EventType, EventID: "e5", DeviceID: "d1", Model: "bogus", Status: report.StatusRejected, CommandID: "c1"},
				{Event: report.EventType, EventID: "e6", DeviceID: "d1", Model: "demo", Status: report.StatusNothingToDo, CurrentVersion: "v0", CommandID: "c2"},
			} {
				if _, err := db.AddEvent(ctx, answer, []byte(`{}`), t0); err != nil {
					t.Fatal(err)
				}
			}
			if devs, err := db.Devices(ctx, ""); err != nil || len(devs) != 1 || devs[0].Version != "v1" {
				t.Fatalf("devices %+v, %v: a command's rejected or nothing_to_do answer is history, not a device state", devs, err)
			}
			devs, err := db.Devices(ctx, "demo")
			if err != nil || len(devs) != 1 || devs[0].ID != "d1" || devs[0].Version != "v1" || !devs[0].Online {
				t.Fatalf("devices %+v, %v: a refusal is history, not a device state", devs, err)
			}
			if err := db.SetPresence(ctx, "d1", false, t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if devs, _ := db.Devices(ctx, ""); devs[0].Online || !devs[0].LastSeen.Equal(t0.Add(time.Second)) {
				t.Fatalf("presence not recorded: %+v", devs[0])
			}
		})
		t.Run("rollouts change only from the revision read", func(t *testing.T) {
			r := &Rollout{Doc: rollout.Rollout{ID: "r9", Revision: 1, Model: "demo", Channel: "stable", State: rollout.StateRunning},
				Envelope: []byte("env1"), StageOpened: t0, Created: t0, Updated: t0}
			if err := db.CreateRollout(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateRollout(ctx, r); !errors.Is(err, ErrExists) {
				t.Fatalf("second create = %v, want ErrExists", err)
			}
			r.Doc.Revision, r.Doc.Stage, r.Doc.Reason, r.Envelope = 2, 1, "stage 0 passed", []byte("env2")
			if err := db.SaveRollout(ctx, r, 1); err != nil {
				t.Fatal(err)
			}
			r.Doc.Revision = 3
			if err := db.SaveRollout(ctx, r, 1); !errors.Is(err, ErrConflict) {
				t.Fatalf("save from a stale revision = %v, want ErrConflict", err)
			}
			got, err := db.GetRollout(ctx, "r9")
			if err != nil || got.Doc.Revision != 2 || got.Doc.Stage != 1 || string(got.Envelope) != "env2" || !got.StageOpened.Equal(t0) {
				t.Fatalf("GetRollout = %+v, %v", got, err)
			}
			h, err := db.RolloutHistory(ctx, "r9")
			if err != nil || len(h) != 2 || h[1].Reason != "stage 0 passed" {
				t.Fatalf("history %+v, %v", h, err)
			}
			if _, err := db.GetRollout(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetRollout of an unknown id = %v", err)
			}
		})
		t.Run("devices stuck in progress time out", func(t *testing.T) {
			db.AddEvent(ctx, event("t1", "slow", report.StatusDownloading, "r5"), []byte(`{}`), t0)
			db.AddEvent(ctx, event("t2", "fast", report.StatusDownloading, "r5"), []byte(`{}`), t0.Add(time.Minute))
			n, err := db.TimeOut(ctx, "r5", t0.Add(30*time.Second), t0.Add(time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("TimeOut = %d, %v; want 1", n, err)
			}
			outs, _ := db.Outcomes(ctx, "r5")
			if outs[0].DeviceID != "fast" || outs[0].Status != OutcomeInProgress || outs[1].Status != OutcomeFailed || outs[1].Reason != "timeout" {
				t.Fatalf("outcomes %+v", outs)
			}
		})
	})
}

// TestOneLeaderPerDatabase: a second controller on the same database waits
// until the first gives up its leadership.
// TestADownloadFailureIsNotAVerdict: the agent retries a download that failed
// for network reasons, so the device is still in progress for its rollout;
// the reason code is the one the updater reports.
func TestADownloadFailureIsNotAVerdict(t *testing.T) {
	if reasonDownload != string(reason.Download) {
		t.Fatalf("reasonDownload %q != string(reason.Download) %q", reasonDownload, string(reason.Download))
	}
	if got := outcomeOf(report.StatusFailed, string(reason.Download)); got != OutcomeInProgress {
		t.Fatalf("a download failure: %s", got)
	}
	if got := outcomeOf(report.StatusFailed, string(reason.Verification)); got != OutcomeFailed {
		t.Fatalf("a verification failure: %s", got)
	}
}

func TestOneLeaderPerDatabase(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, b := open(t, url), open(t, url)
		_, release, err := a.Leader(ctx, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			_, rel, err := b.Leader(ctx, 50*time.Millisecond)
			if err == nil {
				defer rel()
			}
			got <- err
		}()
		select {
		case err := <-got:
			t.Fatalf("a second leader while the first holds it (err %v)", err)
		case <-time.After(500 * time.Millisecond):
		}
		release()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the second controller did not take over after the first released")
		}
	})
}

// TestLeaderLostWhenItsSessionDies: PostgreSQL going away ends leadership, so
// a controller cut off from its database stops acting.
func TestLeaderLostWhenItsSessionDies(t *testing.T) {
	pg := pgtest.Start(t, true)
	db := open(t, pg.URL())
	lost, release, err := db.Leader(context.Background(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	pg.Kill()
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("leadership not reported lost after the database went away")
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	got := Redact("postgres://fleet:s3cret@db:5432/fleet")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "fleet:xxxxx@db") {
		t.Fatalf("Redact = %s", got)
	}
	if _, err := Open(context.Background(), "postgres://fleet:s3cret@127.0.0.1:1/x?connect_timeout=1"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Open error shows the password or is nil: %v", err)
	}
}

// TestDeviceHistoryAndVersionChanges: a device's events under any rollout or
// command come newest first with what has no column (command id, logs) read
// from the body; the chart's points are the changes of version only, per
// device, oldest first.
func TestDeviceHistoryAndVersionChanges(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		add := func(id, device, status, current string, at time.Duration, body string) {
			t.Helper()
			ev := event(id, device, status, "r1")
			ev.CurrentVersion = current
			if _, err := db.AddEvent(ctx, ev, []byte(body), t0.Add(at)); err != nil {
				t.Fatal(err)
			}
		}
		add("a1", "d1", report.StatusDownloading, "v1", 1*time.Second, `{}`)
		add("a2", "d1", report.StatusSuccess, "v2", 2*time.Second, `{}`)
		add("b1", "d2", report.StatusDownloading, "v1", 3*time.Second, `{}`)
		add("a3", "d1", report.StatusRolledBack, "v1", 4*time.Second, `{"command_id":"c9","logs":["rolled back by a person"]}`)
		add("b2", "d2", report.StatusFailed, "v1", 5*time.Second, `{}`)
		add("c1", "d3", report.StatusDownloading, "", 6*time.Second, `{}`) // no version yet: no point
		evs, err := db.DeviceEvents(ctx, "d1", 2)
		if err != nil || len(evs) != 2 || evs[0].EventID != "a3" || evs[1].EventID != "a2" {
			t.Fatalf("DeviceEvents(d1, 2) = %+v, %v; want a3, a2", evs, err)
		}
		if e := evs[0]; e.CommandID != "c9" || len(e.Logs) != 1 || e.CurrentVersion != "v1" || e.RolloutID != "r1" || e.Model != "demo" {
			t.Fatalf("newest event of d1: %+v", e)
		}
		got, err := db.VersionChanges(ctx, "demo")
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, c := range got {
			s = append(s, fmt.Sprintf("%s:%s@%s", c.DeviceID, c.Version, c.At.Sub(t0)))
		}
		if want := "d1:v1@1s d1:v2@2s d2:v1@3s d1:v1@4s"; strings.Join(s, " ") != want {
			t.Fatalf("VersionChanges = %s, want %s", strings.Join(s, " "), want)
		}
		if devs, err := db.Device(ctx, "d2"); err != nil || len(devs) != 1 || devs[0].Status != report.StatusFailed {
			t.Fatalf("Device(d2) = %+v, %v", devs, err)
		}
		if devs, err := db.Device(ctx, "nobody"); err != nil || len(devs) != 0 {
			t.Fatalf("Device(nobody) = %+v, %v", devs, err)
		}
		if got, err := db.VersionChanges(ctx, "other"); err != nil || len(got) != 0 {
			t.Fatalf("VersionChanges(other) = %+v, %v", got, err)
		}
	})
}

// TestMigrationBackfillsEventVersions: events recorded before migration 2
// get their current_version from their stored body, so the chart covers them.
func TestMigrationBackfillsEventVersions(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		all := migrations
		migrations = all[:1]
		db := open(t, url)
		migrations = all
		for i, body := range []string{
			`{"current_version":"v7"}`,
			`{"current_version":"v8","logs":["\u0000"]}`, // encoding/json took it; PostgreSQL's jsonb would not
			`not JSON`,
		} {
			_, err := db.exec(ctx, nil, `INSERT INTO events (event_id, device_id, model, event, status, at, received, body)
				VALUES (?, ?, 'demo', 'update', 'success', 1, ?, ?)`, fmt.Sprint("old", i), fmt.Sprint("d", i), 1000+i, body)
			if err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		got, err := open(t, url).VersionChanges(ctx, "demo")
		if err != nil || len(got) != 2 || got[0].Version != "v7" || got[1].Version != "v8" {
			t.Fatalf("after migrating: %+v, %v; want the old events' v7 and v8", got, err)
		}
	})
}
