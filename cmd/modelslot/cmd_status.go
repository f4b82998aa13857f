package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/device"
	"github.com/modelslot/modelslot/slots"
)

// statusJSON is the `status --json` contract (DESIGN.md § status --json).
type statusJSON struct {
	DeviceID string        `json:"device_id"`
	Models   []modelStatus `json:"models"`
}

type modelStatus struct {
	Name            string              `json:"name"`
	Link            string              `json:"link"`
	ActiveSlot      *string             `json:"active_slot"`
	ActiveVersion   *string             `json:"active_version"`
	PreviousSlot    *string             `json:"previous_slot"`
	PreviousVersion *string             `json:"previous_version"`
	Trial           *trialJSON          `json:"trial"`
	Slots           map[string]slotJSON `json:"slots"`
	LastFailure     *slots.Failure      `json:"last_failure,omitempty"`
	Busy            string              `json:"busy,omitempty"` // another process holds the lock: shown as last saved
	state           *slots.State
}

type trialJSON struct {
	Slot     string    `json:"slot"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Attempts int       `json:"attempts"`
}

type slotJSON struct {
	Status         slots.Status `json:"status"`
	Version        string       `json:"version,omitempty"`
	ManifestSHA256 string       `json:"manifest_sha256,omitempty"`
	InstalledAt    *time.Time   `json:"installed_at,omitempty"`
	Reason         string       `json:"reason,omitempty"`
}

var statusCommand = command{
	name:     "status",
	synopsis: []string{"[--json]"},
	summary:  "show slots, versions, trial and last failure",
	help: "Shows, for every configured model (or the one --model names), both slots with their status and version, " +
		"which one is active and which is the previous good one, a trial in progress and the last failure with its reason. " +
		"It recovers an interrupted step first, like every command; when another modelslot process holds the model's lock " +
		"it shows the last saved state and says so.\n\n" +
		"--json prints the same for scripts (a stable contract: docs/architecture.md); errors are JSON on stderr then.",
	examples: []example{
		{"status", "slots and versions of every model, for a person"},
		{"--model demo status --json", "one model, as JSON for a script"},
	},
	flags: func(fs *flag.FlagSet) { statusFlags(fs, &globalOptions{}) },
	run:   runStatus,
}

func statusFlags(fs *flag.FlagSet, g *globalOptions) {
	fs.BoolVar(&g.json, "json", false, "print JSON for scripts")
}

func runStatus(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("status", g)
	statusFlags(fs.FlagSet, g)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return err
	}
	models := cfg.Models
	if g.model != "" {
		m, err := cfg.Model(g.model)
		if err != nil {
			return err
		}
		models = []config.Model{*m}
	}
	out := statusJSON{DeviceID: cfg.DeviceID}
	for i := range models {
		ms, err := modelStatusOf(ctx, cfg, &models[i])
		if err != nil {
			return err
		}
		out.Models = append(out.Models, ms)
	}
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printStatus(g.stdout, &out)
	return nil
}

// modelStatusOf opens the model (recovering it, like every command) or, when
// another process holds the lock, reads what it last saved.
func modelStatusOf(ctx context.Context, cfg *config.Config, m *config.Model) (modelStatus, error) {
	var busy string
	t, err := device.Open(ctx, cfg, m, "status")
	var st *slots.State
	var link string
	switch {
	case err == nil:
		defer t.Close()
		st, link = t.Store.State(), t.Store.LinkPath()
	case errors.Is(err, slots.ErrBusy):
		busy = err.Error()
		v, verr := slots.OpenView(device.StoreConfig(cfg, m))
		if verr != nil {
			return modelStatus{}, verr
		}
		st, link = v.State(), v.LinkPath()
	default:
		return modelStatus{}, err
	}
	return toModelStatus(m.Name, link, st, busy), nil
}

func toModelStatus(name, link string, st *slots.State, busy string) modelStatus {
	ms := modelStatus{Name: name, Link: link, Slots: map[string]slotJSON{}, LastFailure: st.LastFailure, Busy: busy, state: st}
	if st.Active != "" {
		ms.ActiveSlot, ms.ActiveVersion = ptr(st.Active), ptr(st.Slots[st.Active].Version)
	}
	if st.Previous != "" {
		ms.PreviousSlot, ms.PreviousVersion = ptr(st.Previous), ptr(st.Slots[st.Previous].Version)
	}
	if t := st.Trial; t != nil {
		ms.Trial = &trialJSON{Slot: t.Slot, Version: t.Version, Started: t.Started, Attempts: t.Attempts}
	}
	for n, s := range st.Slots {
		sj := slotJSON{Status: s.Status, Version: s.Version, ManifestSHA256: s.ManifestSHA256, Reason: s.Reason}
		if !s.InstalledAt.IsZero() {
			sj.InstalledAt = &s.InstalledAt
		}
		ms.Slots[n] = sj
	}
	return ms
}

func ptr(s string) *string { return &s }

func printStatus(w io.Writer, out *statusJSON) {
	fmt.Fprintf(w, "device %s\n", out.DeviceID)
	for _, m := range out.Models {
		st := m.state
		fmt.Fprintf(w, "\nmodel %s  (link %s)\n", m.Name, m.Link)
		if m.Busy != "" {
			fmt.Fprintf(w, "  busy: %s\n  (showing the last saved state)\n", m.Busy)
		}
		if st.Active == "" {
			fmt.Fprintln(w, "  no version is active")
		}
		for _, n := range []string{slots.A, slots.B} {
			fmt.Fprintf(w, "  %s\n", slotLine(st, n))
		}
		if t := st.Trial; t != nil {
			fmt.Fprintf(w, "  trial: %s in slot %s since %s (attempt %d)\n", t.Version, t.Slot, t.Started.Local().Format(time.DateTime), t.Attempts)
		}
		if f := st.LastFailure; f != nil {
			fmt.Fprintf(w, "  last failure: %s at %s: %s\n", f.Version, f.At.Local().Format(time.DateTime), f.Reason)
			if f.RestoreFailed != "" {
				fmt.Fprintf(w, "  ATTENTION: after reverting, %s\n", f.RestoreFailed)
			}
		}
	}
}

func slotLine(st *slots.State, n string) string {
	s := st.Slots[n]
	role := ""
	switch n {
	case st.Active:
		role = "active"
	case st.Previous:
		role = "previous"
	}
	line := fmt.Sprintf("slot %s  %-8s  %-10s  %s", n, role, s.Status, s.Version)
	if !s.InstalledAt.IsZero() {
		line += "  installed " + s.InstalledAt.Local().Format(time.DateTime)
	}
	if s.Reason != "" {
		line += "  (" + s.Reason + ")"
	}
	return line
}
