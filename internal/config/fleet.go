package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/netconf"
)

// Fleet configures the controller, `modelslot fleet serve` (docs/fleet.md).
type Fleet struct {
	// Database: "postgres://…" for PostgreSQL; empty for SQLite in
	// <state_dir>/fleet.db; or an absolute SQLite file path.
	Database string `toml:"database"`
	// Broker is the MQTT URL; default [platform] mqtt_url.
	Broker   string `toml:"broker"`
	Listen   string `toml:"listen"`    // JSON API, /metrics, rollout documents; default 127.0.0.1:8470
	StateDir string `toml:"state_dir"` // default /var/lib/modelslot-fleet
	// RolloutKey is the private key the controller signs rollouts with; its
	// .pub goes into the devices' rollout_keys.
	RolloutKey      string   `toml:"rollout_key"`
	Tick            Duration `toml:"tick"`             // how often rollouts are evaluated; default 5s
	ProgressTimeout Duration `toml:"progress_timeout"` // a device in progress longer has failed; default 1h
	DocumentTTL     Duration `toml:"document_ttl"`     // expiry of a signed document; republished at half; default 24h
	// HaltAction is what crossing a failure threshold does: "halt" (default:
	// stop, devices that took it stay) or "abort" (and, by the rollout's
	// abort_rollback, roll them back).
	HaltAction string `toml:"halt_action"`
	// URL is where the CLI reaches the controller; default http://<listen>.
	URL string `toml:"url"`
	// APITokenFile holds the bearer token the /v1/ API requires (and the CLI
	// sends); empty: the API is open (keep listen on loopback then).
	APITokenFile string `toml:"api_token_file"`
}

// Fleet defaults.
const (
	DefaultFleetListen = "127.0.0.1:8470"
	DefaultFleetState  = "/var/lib/modelslot-fleet"
)

func (f *Fleet) fill(p *Platform) error {
	if f.Listen == "" {
		f.Listen = DefaultFleetListen
	}
	if f.StateDir == "" {
		f.StateDir = DefaultFleetState
	}
	if !filepath.IsAbs(f.StateDir) {
		return fmt.Errorf("[fleet] state_dir %q must be an absolute path", f.StateDir)
	}
	if f.Database == "" {
		f.Database = filepath.Join(f.StateDir, "fleet.db")
	}
	if !strings.HasPrefix(f.Database, "postgres://") && !strings.HasPrefix(f.Database, "postgresql://") && !filepath.IsAbs(strings.TrimPrefix(f.Database, "sqlite:")) {
		return fmt.Errorf("[fleet] database: want postgres://… or an absolute SQLite file path")
	}
	if f.Broker == "" {
		f.Broker = p.MQTTURL
	}
	if f.Broker != "" {
		if _, _, _, _, err := netconf.Broker(f.Broker); err != nil {
			return fmt.Errorf("[fleet] broker: %v", err)
		}
	}
	if f.URL == "" {
		f.URL = "http://" + f.Listen
	}
	defaults := []struct {
		d   *Duration
		def time.Duration
	}{{&f.Tick, 5 * time.Second}, {&f.ProgressTimeout, time.Hour}, {&f.DocumentTTL, 24 * time.Hour}}
	for _, d := range defaults {
		if *d.d == 0 {
			*d.d = Duration(d.def)
		}
	}
	switch f.HaltAction {
	case "":
		f.HaltAction = "halt"
	case "halt", "abort":
	default:
		return fmt.Errorf("[fleet] halt_action %q: use \"halt\" or \"abort\"", f.HaltAction)
	}
	return nil
}
