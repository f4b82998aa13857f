package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"text/tabwriter"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/netconf"
	"github.com/modelslot/modelslot/systemd"
	"github.com/modelslot/modelslot/verify"
)

// runFleet: `modelslot fleet serve` runs the controller; `modelslot fleet
// devices` lists what it knows of the devices.
func runFleet(ctx context.Context, g *globalOptions, args []string) error {
	if len(args) == 0 {
		return usageErrorf("fleet: want a subcommand: serve, devices")
	}
	switch args[0] {
	case "serve":
		return runFleetServe(ctx, g, args[1:])
	case "devices":
		return runFleetDevices(ctx, g, args[1:])
	}
	return usageErrorf("fleet: unknown subcommand %q: serve, devices", args[0])
}

func runFleetServe(ctx context.Context, g *globalOptions, args []string) error {
	if err := parseFlags(newFlagSet("fleet serve", g), args); err != nil {
		return err
	}
	if g.logLevel == "warn" && envOr("MODELSLOT_LOG_LEVEL", "") == "" {
		setupLogging("info", g.stderr) // a daemon's log is its only voice
	}
	cfg, err := config.Load(g.config)
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

func runFleetDevices(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("fleet devices", g)
	fs.BoolVar(&g.json, "json", false, "print JSON for scripts")
	model := fs.String("model", g.model, "only devices of this model")
	api := controllerFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var devs []store.Device
	path := "/v1/devices"
	if *model != "" {
		path += "?model=" + *model
	}
	if err := newAPIClient(g, api).do(ctx, "GET", path, nil, &devs); err != nil {
		return err
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(devs)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tMODEL\tVERSION\tSTATUS\tONLINE\tLAST SEEN")
	for _, d := range devs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", d.ID, d.Model, d.Version, d.Status, d.Online, d.LastSeen.Format("2006-01-02 15:04:05Z"))
	}
	return w.Flush()
}
