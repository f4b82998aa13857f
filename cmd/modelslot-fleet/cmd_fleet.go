package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/dashboard"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/systemd"
	"github.com/modelslot/modelslot/verify"
)

var fleetCommand = cli.Command{
	Name: "fleet",
	Synopsis: []string{"serve", "devices [--json] [--controller URL] [--api-token-file FILE]",
		"simulate --devices N --broker URL --model M --trusted-keys FILES [--rollout-keys FILES] [--source URL] [--fail-version V] [--state-dir DIR] [--until V] [--duration D]"},
	Summary: "the rollout controller, and the devices it knows",
	Help: "fleet serve runs the rollout controller of the config's [fleet] table until SIGTERM: it records every device's " +
		"events and status from the broker in its database (SQLite, or PostgreSQL), opens a rollout's next stage after " +
		"its soak time and success threshold, halts it when a failure threshold is crossed, and publishes each signed " +
		"revision of the rollout document. Only one controller acts per database; a second stands by. " +
		"It serves the API, the metrics and a dashboard (http://LISTEN/) on [fleet] listen. " +
		"fleet devices lists the devices the controller knows, with their version and last status " +
		"(docs/fleet.md).\n\n" +
		"fleet simulate runs N real agents in this one process, each with its own slot store under --state-dir (put it " +
		"on a tmpfs such as /dev/shm), its own MQTT connection to --broker and the real download path: every device first " +
		"installs --source, then follows the rollouts of --rollout-channel signed by --rollout-keys like a real device. " +
		"There is no systemd unit per simulated device: a probe stand-in confirms each activation and fails " +
		"--fail-version, which the device reverts. It prints the devices per version and state every --progress, and a " +
		"summary at the end (converged, failed, installs, events); exit 1 when --until was not reached within " +
		"--duration (docs/scale.md).",
	Examples: []cli.Example{
		{Cmd: "fleet serve", What: "the controller, as modelslot-fleet.service runs it"},
		{Cmd: "fleet devices --json", What: "every device's model, version, status and presence, for a script"},
		{Cmd: "fleet simulate --devices 1000 --broker mqtt://127.0.0.1:1883 --model demo --trusted-keys pub.pub --rollout-keys rollout.pub " +
			"--source http://127.0.0.1:8080/demo/channels/stable.json --fail-version v3 --until v2 --duration 30m",
			What: "1,000 simulated devices start on the channel's version and follow the rollouts until all run v2"},
	},
	Flags: func(fs *flag.FlagSet) { fleetDevicesFlags(fs, &cli.Options{}); fleetSimulateFlags(fs) },
	Run:   runFleet,
}

func fleetDevicesFlags(fs *flag.FlagSet, g *cli.Options) *controllerFlags {
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
	return controllerFlag(fs)
}

// runFleet: `modelslot fleet serve` runs the controller; `modelslot fleet
// devices` lists what it knows of the devices.
func runFleet(ctx context.Context, g *cli.Options, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := cli.NewFlagSet("fleet", g) // --help lists every flag of the command
		fleetDevicesFlags(fs.FlagSet, g)
		fleetSimulateFlags(fs.FlagSet)
		if err := cli.ParseFlags(fs, args); err != nil {
			return err
		}
		return cli.UsageErrorf("fleet: want a subcommand: serve, devices, simulate")
	}
	switch args[0] {
	case "serve":
		return runFleetServe(ctx, g, args[1:])
	case "devices":
		return runFleetDevices(ctx, g, args[1:])
	case "simulate":
		return runFleetSimulate(ctx, g, args[1:])
	}
	return cli.UsageErrorf("fleet: unknown subcommand %q: serve, devices, simulate", args[0])
}

func runFleetServe(ctx context.Context, g *cli.Options, args []string) error {
	if err := cli.ParseFlags(cli.NewFlagSet("fleet serve", g), args); err != nil {
		return err
	}
	cli.DaemonLogging(g)
	cfg, err := config.Load(g.Config)
	if err != nil {
		return err
	}
	if cfg.Fleet == nil {
		return fmt.Errorf("%w: %s has no [fleet] table (docs/fleet.md)", config.ErrConfig, cfg.Path)
	}
	key, err := verify.ReadPrivateKeyFile(cfg.Fleet.RolloutKey)
	if err != nil {
		return fmt.Errorf("%w: [fleet] rollout_key: %w", config.ErrConfig, err)
	}
	if err := os.MkdirAll(cfg.Fleet.StateDir, 0o755); err != nil {
		return fmt.Errorf("fleet: state dir: %w", err)
	}
	db, err := store.Open(ctx, cfg.Fleet.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := netconf.Load(cfg.Platform.Files(), cfg.Platform.Username)
	if err != nil {
		return fmt.Errorf("%w: [platform] %w", config.ErrConfig, err)
	}
	c := fleet.New(*cfg.Fleet, cfg.Platform.TopicPrefix, db, key)
	c.Conn = conn
	c.UI = dashboard.New(c)
	if f := cfg.Fleet.APITokenFile; f != "" {
		tok, err := netconf.Load(netconf.Files{TokenFile: f}, "")
		if err != nil {
			return fmt.Errorf("%w: [fleet] api_token_file: %w", config.ErrConfig, err)
		}
		c.APIToken = tok.Token
	}
	if conn.TLS != nil {
		c.HTTP.Transport = &http.Transport{TLSClientConfig: conn.TLS, Proxy: http.ProxyFromEnvironment}
	}
	err = c.Run(ctx, func(addr string) {
		slog.Info("fleet controller ready", "addr", addr)
		systemd.NotifyReady()
	})
	systemd.NotifyStopping()
	return err
}

func runFleetDevices(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("fleet devices", g)
	api := fleetDevicesFlags(fs.FlagSet, g)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	var devs []store.Device
	path := "/v1/devices"
	if g.Model != "" {
		path += "?model=" + url.QueryEscape(g.Model)
	}
	if err := newAPIClient(g, api).do(ctx, "GET", path, nil, &devs); err != nil {
		return err
	}
	if g.JSON {
		return json.NewEncoder(g.Stdout).Encode(devs)
	}
	w := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tMODEL\tVERSION\tSTATUS\tONLINE\tLAST SEEN")
	for _, d := range devs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", d.ID, d.Model, d.Version, d.Status, d.Online, d.LastSeen.Format("2006-01-02 15:04:05Z"))
	}
	return w.Flush()
}
