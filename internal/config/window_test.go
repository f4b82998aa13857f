package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWindowOpen(t *testing.T) {
	day := func(h, m int) time.Time { return time.Date(2026, 12, 1, h, m, 0, 0, time.Local) }
	tests := []struct {
		window string
		at     time.Time
		open   bool
		wait   time.Duration
	}{
		{"02:00-05:00", day(3, 0), true, 0},
		{"02:00-05:00", day(2, 0), true, 0},
		{"02:00-05:00", day(5, 0), false, 21 * time.Hour},
		{"02:00-05:00", day(1, 30), false, 30 * time.Minute},
		{"22:00-04:00", day(23, 0), true, 0},
		{"22:00-04:00", day(3, 59), true, 0},
		{"22:00-04:00", day(12, 0), false, 10 * time.Hour},
	}
	for _, tt := range tests {
		var w Window
		if err := w.UnmarshalText([]byte(tt.window)); err != nil {
			t.Fatal(err)
		}
		open, wait := w.Open(tt.at)
		if open != tt.open || wait != tt.wait {
			t.Errorf("%s at %s: open %v in %s, want %v in %s", tt.window, tt.at.Format("15:04"), open, wait, tt.open, tt.wait)
		}
	}
	if open, _ := (Window{}).Open(day(12, 0)); !open {
		t.Fatal("an unset window must always be open")
	}
}

func TestRolloutSettings(t *testing.T) {
	base := "[[model]]\nname = \"demo\"\n"
	c, err := Parse([]byte(base + "rollout_channel = \"stable\"\nrollout_keys = [\"/k.pub\"]\nrollout_url = \"https://fleet/demo/stable.json\"\nmaintenance_window = \"02:00-05:00\"\nrollout_defer = \"1h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Models[0]
	if m.RolloutChannel != "stable" || !m.MaintenanceWindow.Set || time.Duration(m.RolloutDefer) != time.Hour || time.Duration(c.Agent.RolloutPoll) != time.Minute {
		t.Fatalf("rollout settings: %+v %+v", m, c.Agent)
	}
	for name, tt := range map[string]struct{ conf, want string }{
		"keys without a channel":  {base + "rollout_keys = [\"/k.pub\"]\n", "without rollout_channel"},
		"channel without keys":    {base + "rollout_channel = \"stable\"\n", "needs rollout_keys"},
		"bad channel":             {base + "rollout_channel = \"Stable!\"\nrollout_keys = [\"/k\"]\n", "rollout_channel"},
		"url not http":            {base + "rollout_channel = \"stable\"\nrollout_keys = [\"/k\"]\nrollout_url = \"ftp://x\"\n", "rollout_url"},
		"bad window":              {base + "rollout_channel = \"stable\"\nrollout_keys = [\"/k\"]\nmaintenance_window = \"2-5\"\n", "maintenance window"},
		"empty window":            {base + "rollout_channel = \"stable\"\nrollout_keys = [\"/k\"]\nmaintenance_window = \"02:00-02:00\"\n", "maintenance window"},
		"reserved device id":      {"device_id = \"rollouts\"\n" + base, "reserved"},
		"model named inbox":       {"[[model]]\nname = \"inbox\"\n", "command inbox"},
		"model named a unit lock": {"[[model]]\nname = \"unit-demo.service.lock\"\n", "unit locks"},
		"hour out of range":       {base + "rollout_channel = \"stable\"\nrollout_keys = [\"/k\"]\nmaintenance_window = \"25:00-02:00\"\n", "maintenance window"},
		"unknown rollout setting": {base + "rollout_chanel = \"stable\"\n", "unknown setting"},
	} {
		if _, err := Parse([]byte(tt.conf)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want an error about %q", name, err, tt.want)
		}
	}
}

func TestFleetSettings(t *testing.T) {
	c, err := Parse([]byte("[platform]\nmqtt_url = \"mqtt://127.0.0.1:1883\"\n[fleet]\nrollout_key = \"/k.key\"\n"))
	if err != nil {
		t.Fatalf("a controller config needs no [[model]]: %v", err)
	}
	f := c.Fleet
	if f.Database != "/var/lib/modelslot-fleet/fleet.db" || f.Broker != "mqtt://127.0.0.1:1883" || f.URL != "http://127.0.0.1:8470" ||
		time.Duration(f.Tick) != 5*time.Second || f.HaltAction != "halt" {
		t.Fatalf("fleet defaults: %+v", f)
	}
	for name, tt := range map[string]struct{ conf, want string }{
		"relative state dir":  {"[fleet]\nstate_dir = \"var\"\n", "state_dir"},
		"relative sqlite":     {"[fleet]\ndatabase = \"fleet.db\"\n", "database"},
		"unknown halt action": {"[fleet]\nhalt_action = \"panic\"\n", "halt_action"},
		"unknown key":         {"[fleet]\ndatabse = \"x\"\n", "unknown setting fleet.databse"},
	} {
		if _, err := Parse([]byte(tt.conf)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Parse = %v, want an error about %q", name, err, tt.want)
		}
	}
}

func TestPlatformConnectionSettings(t *testing.T) {
	base := "[[model]]\nname = \"demo\"\n[platform]\n"
	if _, err := Parse([]byte(base + "mqtt_url = \"mqtts://dev1:pw@broker:8883\"\nca_file = \"/ca.pem\"\npassword_file = \"/pw\"\n")); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ conf, want string }{
		"http scheme":       {base + "mqtt_url = \"http://broker:80\"\n", `scheme "http"`},
		"no scheme":         {base + "mqtt_url = \"broker:1883\"\n", "scheme"},
		"cert without key":  {base + "cert_file = \"/c.pem\"\n", "cert_file and key_file"},
		"password redacted": {base + "mqtt_url = \"http://dev1:s3cret@broker\"\n", "dev1:xxxxx@broker"},
	} {
		_, err := Parse([]byte(tt.conf))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: Parse = %v, want a config error about %q without the password", name, err, tt.want)
		}
	}
}
