// Package config reads modelslot's TOML configuration (DESIGN.md § Config) and
// fills in the documented defaults. Unknown keys are an error, not a silent
// no-op: a misspelt setting must not leave a device running on a default.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/modelslot/modelslot/internal/health"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/verify"
)

// ErrConfig is the kind of every configuration error; the command line maps it
// to exit code 2.
var ErrConfig = errors.New("configuration error")

// Defaults (DESIGN.md § Config).
const (
	DefaultPath       = "/etc/modelslot/modelslot.toml"
	DefaultStateRoot  = "/var/lib/modelslot"
	EnvConfig         = "MODELSLOT_CONFIG"
	machineIDFile     = "/etc/machine-id"
	defaultAttempts   = 3
	defaultActivation = "restart"
)

// Config is the whole file.
type Config struct {
	DeviceID  string   `toml:"device_id"`
	StateRoot string   `toml:"state_root"`
	Systemd   Systemd  `toml:"systemd"`
	Platform  Platform `toml:"platform"`
	Agent     Agent    `toml:"agent"`
	Download  Download `toml:"download"`
	Models    []Model  `toml:"model"`
	// Fleet is the controller's table; nil when the file has none.
	Fleet *Fleet `toml:"fleet"`

	// Labels describe the device (site, hardware…); a manifest may require them.
	Labels map[string]string `toml:"labels"`
	// RuntimeVersion is the inference runtime's version, for a manifest's
	// min_runtime; empty: unknown (a manifest requiring one is refused).
	RuntimeVersion string `toml:"runtime_version"`

	Path string `toml:"-"` // where it was read from
}

// Systemd selects the manager that runs the inference units.
type Systemd struct {
	Scope string `toml:"scope"` // "system" (default) or "user"
	Bus   string `toml:"bus"`   // optional D-Bus address
}

// Platform is where events go and commands come from.
type Platform struct {
	MQTTURL     string `toml:"mqtt_url"`
	HTTPURL     string `toml:"http_url"`
	TopicPrefix string `toml:"topic_prefix"` // default "modelslot"
	// CommandsURL, when set, is polled (GET, with ETag) for a JSON list of
	// commands, for platforms without MQTT.
	CommandsURL  string   `toml:"commands_url"`
	PollInterval Duration `toml:"poll_interval"` // default 30s

	// An authenticated, encrypted connection (docs/fleet.md § Platform
	// connection). Secrets are read from files, never written here.
	CAFile       string `toml:"ca_file"`       // CAs for mqtts:// and https:// (default: the system's)
	CertFile     string `toml:"cert_file"`     // client certificate (mqtts), with key_file
	KeyFile      string `toml:"key_file"`      //
	Username     string `toml:"username"`      // MQTT username; a device defaults to its device_id when password_file is set
	PasswordFile string `toml:"password_file"` // MQTT password
	TokenFile    string `toml:"token_file"`    // bearer token for http_url, commands_url and rollout_url
}

// Files names the platform connection's files for netconf.Load.
func (p *Platform) Files() netconf.Files {
	return netconf.Files{CA: p.CAFile, Cert: p.CertFile, Key: p.KeyFile, PasswordFile: p.PasswordFile, TokenFile: p.TokenFile}
}

// Download tunes repository downloads.
type Download struct {
	Workers   int  `toml:"workers"`   // chunks at once; default 4
	Bandwidth Size `toml:"bandwidth"` // bytes per second over all requests; 0 = unlimited
	// MinRate is the slowest a request's answer may come, in bytes per second
	// over MinRateWindow (waits for the bandwidth limit do not count); a
	// slower attempt is cut off and retried, resuming. Default 1KiB over 60s.
	MinRate       Size     `toml:"min_rate"`
	MinRateWindow Duration `toml:"min_rate_window"`
	// RequestTimeout bounds one attempt of one request from its first byte to
	// its last (bandwidth waits excluded); default 30m.
	RequestTimeout Duration `toml:"request_timeout"`
	// CAFile: PEM CAs to trust for an https:// repository (default: the
	// system's); TokenFile: a bearer token sent to the repository's host only.
	CAFile    string `toml:"ca_file"`
	TokenFile string `toml:"token_file"`
}

// Files names the repository connection's files for netconf.Load.
func (d *Download) Files() netconf.Files {
	return netconf.Files{CA: d.CAFile, TokenFile: d.TokenFile}
}

// Agent configures the daemon.
type Agent struct {
	MetricsAddr string   `toml:"metrics_addr"` // Prometheus /metrics listen address; empty = off
	Heartbeat   Duration `toml:"heartbeat"`    // retained status refresh; default 60s
	// ChannelPoll is how often each model's `source` channel is checked for a
	// new version (an install is queued when it moves); 0 = never.
	ChannelPoll Duration `toml:"channel_poll"`
	// RolloutPoll is how often a model's rollout_url is fetched (with ETag);
	// default 60s.
	RolloutPoll Duration `toml:"rollout_poll"`
	// BundleDir is the one directory a platform command's source may name a
	// local bundle under (regular files only); empty = http(s) sources only.
	BundleDir string `toml:"bundle_dir"`
}

// Model is one [[model]] table.
type Model struct {
	Name        string   `toml:"name"`
	Link        string   `toml:"link"`       // default <state_root>/<name>/current
	Unit        string   `toml:"unit"`       // empty: nothing to restart
	Activation  string   `toml:"activation"` // "restart" or "reload"
	Source      string   `toml:"source"`
	TrustedKeys []string `toml:"trusted_keys"`
	// DownloadBudget refuses an update that would download more (a delta must
	// never silently become a full download); 0 = no limit.
	DownloadBudget Size   `toml:"download_budget"`
	Health         Health `toml:"health"`

	// Fleet rollouts (docs/fleet.md). RolloutChannel turns them on: the agent
	// follows the rollout of this model's channel (retained MQTT message, and
	// RolloutURL when set) and accepts only documents signed by RolloutKeys,
	// which are not the publisher's trusted_keys.
	RolloutChannel string   `toml:"rollout_channel"`
	RolloutURL     string   `toml:"rollout_url"`
	RolloutKeys    []string `toml:"rollout_keys"`
	// MaintenanceWindow limits when a rollout may start an install here;
	// RolloutDefer spreads a stage's starts: each device waits its own share of
	// it (from its id) after it joins a stage.
	MaintenanceWindow Window   `toml:"maintenance_window"`
	RolloutDefer      Duration `toml:"rollout_defer"`
}

// Health is the model's health contract (DESIGN.md § Health contract).
type Health struct {
	StartTimeout  Duration `toml:"start_timeout"`
	ConfirmWindow Duration `toml:"confirm_window"`
	ProbeURL      string   `toml:"probe_url"`
	// ProbeVersion is where the probe answer names its version:
	// "json:/pointer" (default "json:/version"), "header:Name", or "off".
	ProbeVersion health.VersionCheck `toml:"probe_version"`
	MaxLatency   Duration            `toml:"max_latency"`
	MaxMemory    Size                `toml:"max_memory"`
	Checks       []string            `toml:"checks"`
	MaxAttempts  int                 `toml:"max_attempts"`
}

// Load reads the config from path, or from $MODELSLOT_CONFIG, or from
// /etc/modelslot/modelslot.toml, in that order.
func Load(path string) (*Config, error) {
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	if path == "" {
		path = DefaultPath
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v; pass --config FILE or set %s (see man modelslot.toml, or docs/config.md)", ErrConfig, path, err, EnvConfig)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse decodes and validates a config and fills in defaults.
func Parse(data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%w: unknown setting %s (see docs/config.md)", ErrConfig, strings.Join(keys, ", "))
	}
	if err := c.fill(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &c, nil
}

func (c *Config) fill() error {
	if c.StateRoot == "" {
		c.StateRoot = DefaultStateRoot
	}
	if !filepath.IsAbs(c.StateRoot) {
		return fmt.Errorf("state_root %q must be an absolute path", c.StateRoot)
	}
	if c.DeviceID == "" {
		c.DeviceID = machineID()
	}
	switch c.Systemd.Scope {
	case "":
		c.Systemd.Scope = "system"
	case "system", "user":
	default:
		return fmt.Errorf("[systemd] scope %q: use \"system\" or \"user\"", c.Systemd.Scope)
	}
	if u := c.Platform.MQTTURL; u != "" {
		if _, _, _, _, err := netconf.Broker(u); err != nil {
			return fmt.Errorf("[platform] %v", err)
		}
	}
	if (c.Platform.CertFile == "") != (c.Platform.KeyFile == "") {
		return errors.New("[platform] cert_file and key_file go together: set both or neither")
	}
	if c.Platform.TopicPrefix == "" {
		c.Platform.TopicPrefix = "modelslot"
	}
	if c.Platform.PollInterval == 0 {
		c.Platform.PollInterval = Duration(30 * time.Second)
	}
	if c.Agent.Heartbeat == 0 {
		c.Agent.Heartbeat = Duration(time.Minute)
	}
	if c.Agent.RolloutPoll == 0 {
		c.Agent.RolloutPoll = Duration(time.Minute)
	}
	if c.Download.MinRate < 0 || c.Download.MinRateWindow < 0 || c.Download.RequestTimeout < 0 {
		return errors.New("[download] min_rate, min_rate_window and request_timeout must not be negative (leave them out for the defaults)")
	}
	if err := checkBundleDir(c.Agent.BundleDir); err != nil {
		return err
	}
	if c.DeviceID == ReservedDeviceID {
		return fmt.Errorf("device_id %q is reserved: it is the first level of the rollout topics; choose another", c.DeviceID)
	}
	if c.Fleet != nil {
		if err := c.Fleet.fill(&c.Platform); err != nil {
			return err
		}
	}
	if len(c.Models) == 0 && c.Fleet == nil {
		return errors.New("no [[model]] table: configure at least one model (or a [fleet] table for the controller)")
	}
	seen := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		if err := m.fill(c.StateRoot); err != nil {
			return err
		}
		if seen[m.Name] {
			return fmt.Errorf("model %q is configured twice", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

// InboxDir is the agent's command inbox under state_root, beside the
// models' directories: no model may have its name.
const InboxDir = "inbox"

func (m *Model) fill(stateRoot string) error {
	if err := verify.CheckModelName(m.Name); err != nil {
		return fmt.Errorf("[[model]] name: %v", err)
	}
	if m.Name == InboxDir || (strings.HasPrefix(m.Name, "unit-") && strings.HasSuffix(m.Name, ".lock")) {
		return fmt.Errorf("[[model]] name %q is reserved: the agent keeps its %s under state_root with that name; choose another", m.Name,
			map[bool]string{true: "command inbox", false: "unit locks"}[m.Name == InboxDir])
	}
	if m.Link == "" {
		m.Link = filepath.Join(stateRoot, m.Name, "current")
	}
	if !filepath.IsAbs(m.Link) {
		return fmt.Errorf("model %s: link %q must be an absolute path", m.Name, m.Link)
	}
	switch m.Activation {
	case "":
		m.Activation = defaultActivation
	case "restart", "reload":
	default:
		return fmt.Errorf("model %s: activation %q: use \"restart\" or \"reload\"", m.Name, m.Activation)
	}
	if err := m.checkProbeVersion(); err != nil {
		return err
	}
	if m.Health.MaxAttempts == 0 {
		m.Health.MaxAttempts = defaultAttempts
	}
	if m.Health.MaxAttempts < 0 {
		return fmt.Errorf("model %s: max_attempts must be positive", m.Name)
	}
	return m.checkRollout()
}

// ReservedDeviceID is the topic level under which rollouts are published
// (<prefix>/rollouts/<model>/<channel>); a device of that name would own
// those topics under a per-device ACL.
const ReservedDeviceID = "rollouts"

func (m *Model) checkRollout() error {
	if m.RolloutChannel == "" {
		if m.RolloutURL != "" || len(m.RolloutKeys) > 0 || m.MaintenanceWindow.Set || m.RolloutDefer != 0 {
			return fmt.Errorf("model %s: rollout settings without rollout_channel do nothing; set rollout_channel (docs/fleet.md)", m.Name)
		}
		return nil
	}
	if err := verify.CheckModelName(m.RolloutChannel); err != nil {
		return fmt.Errorf("model %s: rollout_channel: %v", m.Name, err)
	}
	if len(m.RolloutKeys) == 0 {
		return fmt.Errorf("model %s: rollout_channel needs rollout_keys: the rollout keys' .pub files (not the publisher's)", m.Name)
	}
	if u := m.RolloutURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("model %s: rollout_url %q: want an http:// or https:// URL", m.Name, u)
	}
	return nil
}

// checkProbeVersion refuses a probe_version that cannot prove anything. With
// "off" the proof that the new version answers is a new main process of the
// unit; a reload keeps the process, and without a unit there is none.
func (m *Model) checkProbeVersion() error {
	v := m.Health.ProbeVersion
	switch {
	case v.String() == health.DefaultVersionCheck: // left out, or written as the default
		return nil
	case m.Health.ProbeURL == "":
		return fmt.Errorf("model %s: probe_version = %q is set but probe_url is empty: there is no probe answer to read it from", m.Name, v)
	case v.Off() && m.Unit == "":
		return fmt.Errorf("model %s: probe_version = \"off\" needs a unit: the unit's new main PID is then the only proof that the new version answers; set unit, or a probe_version naming the version (\"json:/…\", \"header:…\")", m.Name)
	case v.Off() && m.Activation == "reload":
		return fmt.Errorf("model %s: probe_version = \"off\" with activation = \"reload\": a reload keeps the unit's main process, so nothing could prove that the new version answers and not the old one; use activation = \"restart\", or a probe_version naming the version (\"json:/…\", \"header:…\")", m.Name)
	}
	return nil
}

// StateDir is the state directory of model m.
func (c *Config) StateDir(m *Model) string { return filepath.Join(c.StateRoot, m.Name) }

// Model returns the model called name; name may be empty when exactly one model
// is configured.
func (c *Config) Model(name string) (*Model, error) {
	if name == "" {
		if len(c.Models) == 1 {
			return &c.Models[0], nil
		}
		return nil, fmt.Errorf("%w: %d models are configured; choose one with --model", ErrConfig, len(c.Models))
	}
	for i := range c.Models {
		if c.Models[i].Name == name {
			return &c.Models[i], nil
		}
	}
	return nil, fmt.Errorf("%w: no model %q in %s", ErrConfig, name, c.Path)
}

func machineID() string {
	b, err := os.ReadFile(machineIDFile)
	if id := strings.TrimSpace(string(b)); err == nil && id != "" {
		return id
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "unknown"
}

// checkBundleDir: bundle_dir, when set, is an absolute, clean path to a real
// directory (not a link), so "under it" means what it says.
func checkBundleDir(dir string) error {
	if dir == "" {
		return nil
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("[agent] bundle_dir %q: use an absolute, clean path", dir)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("[agent] bundle_dir: %w; create the directory or remove the setting", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("[agent] bundle_dir %s is not a directory (links are refused): name the real directory", dir)
	}
	return nil
}
