package report

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func appendN(t *testing.T, o *Outbox, statuses ...string) {
	t.Helper()
	for _, s := range statuses {
		if err := o.Append(&Event{Status: s, Model: "demo", DeviceID: "d1"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOutboxKeepsOrderAndSequenceAcrossDrains(t *testing.T) {
	o, err := OpenOutbox(t.TempDir(), 0, "http")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, o, StatusDownloading, StatusInstalling, StatusSuccess)
	evs, _ := o.Pending("http", 10)
	if len(evs) != 3 || evs[0].Sequence != 1 || evs[2].Sequence != 3 || evs[2].Status != StatusSuccess {
		t.Fatalf("pending = %+v", evs)
	}
	if evs[0].EventID == "" || evs[0].EventID == evs[1].EventID || evs[0].Event != EventType {
		t.Fatalf("events need distinct ids and the event type: %+v", evs[:2])
	}
	if err := o.Ack("http", 3); err != nil {
		t.Fatal(err)
	}
	if d := o.Depth("http"); d != 0 {
		t.Fatalf("depth %d after ack", d)
	}
	appendN(t, o, StatusDownloading)
	evs, _ = o.Pending("http", 10)
	if len(evs) != 1 || evs[0].Sequence != 4 {
		t.Fatalf("sequence must keep rising after the outbox drained: %+v", evs)
	}
}

func TestOutboxRemovesOnlyWhatEverySinkAcked(t *testing.T) {
	dir := t.TempDir()
	o, _ := OpenOutbox(dir, 0, "http", "mqtt")
	appendN(t, o, StatusInstalling, StatusSuccess)
	o.Ack("http", 2)
	if evs, _ := o.Pending("mqtt", 10); len(evs) != 2 {
		t.Fatalf("mqtt lost events acknowledged only by http: %d", len(evs))
	}
	o.Ack("mqtt", 1)
	if files, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(files) != 1 {
		t.Fatalf("want only the event mqtt has not acknowledged, got %v", files)
	}
}

func TestFullOutboxDropsProgressNeverTerminal(t *testing.T) {
	o, _ := OpenOutbox(t.TempDir(), 4, "http")
	appendN(t, o, StatusDownloading, StatusFailed, StatusInstalling, StatusRolledBack, StatusDownloading, StatusSuccess)
	evs, _ := o.Pending("http", 100)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Status)
	}
	want := fmt.Sprint([]string{StatusFailed, StatusRolledBack, StatusDownloading, StatusSuccess})
	if fmt.Sprint(got) != want {
		t.Fatalf("kept %v, want %v", got, want)
	}
	// Only terminal events: the bound is exceeded rather than one dropped.
	o2, _ := OpenOutbox(t.TempDir(), 2, "http")
	appendN(t, o2, StatusSuccess, StatusFailed, StatusRolledBack)
	if d := o2.Depth("http"); d != 3 {
		t.Fatalf("terminal events dropped: depth %d", d)
	}
}

func TestBrokenEventIsSetAsideNotBlocking(t *testing.T) {
	dir := t.TempDir()
	o, _ := OpenOutbox(dir, 0, "http")
	appendN(t, o, StatusInstalling, StatusSuccess)
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.json", 1)), []byte("{torn"), 0o644)
	evs, _ := o.Pending("http", 10)
	if len(evs) != 1 || evs[0].Status != StatusSuccess {
		t.Fatalf("pending = %+v", evs)
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%020d.json.broken", 1))); err != nil {
		t.Fatalf("broken event not kept aside: %v", err)
	}
}
