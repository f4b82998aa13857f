package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/systemd"
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
	Restore         *slots.Restore      `json:"restore,omitempty"` // a version the link went back to that does not serve yet
	Busy            string              `json:"busy,omitempty"`    // another process holds the lock: what it is doing
	Unit            *unitJSON           `json:"unit,omitempty"`
	state           *slots.State

	// UnitOutput: with a last failure, the unit's last output lines as they
	// are now (journal or output file), to see what the server said.
	UnitOutput []string `json:"unit_output,omitempty"`
}

// statusOutputLines is how many of the unit's last lines status shows.
const statusOutputLines = 20

type trialJSON struct {
	Slot     string    `json:"slot"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Attempts int       `json:"attempts"`
	// Interrupted: no modelslot process is judging it (it crashed, or the
	// device lost power); the agent at start or `modelslot recover` resumes it.
	Interrupted bool `json:"interrupted"`
}

// unitJSON is the inference unit as its service manager sees it now.
type unitJSON struct {
	Name        string `json:"name"`
	Reachable   bool   `json:"reachable"`       // false: the manager did not answer; Error says why
	Error       string `json:"error,omitempty"` // why the state could not be read
	LoadState   string `json:"load_state,omitempty"`
	ActiveState string `json:"active_state,omitempty"`
	SubState    string `json:"sub_state,omitempty"`
	Result      string `json:"result,omitempty"`
	MainPID     uint32 `json:"main_pid,omitempty"`
}

// unitStatusBudget bounds how long status waits for the service manager, for
// every model together: status answers at once whatever the manager does.
const unitStatusBudget = 700 * time.Millisecond

type slotJSON struct {
	Status         slots.Status `json:"status"`
	Version        string       `json:"version,omitempty"`
	ManifestSHA256 string       `json:"manifest_sha256,omitempty"`
	InstalledAt    *time.Time   `json:"installed_at,omitempty"`
	Code           reason.Code  `json:"code,omitempty"` // why it is bad, a code of the contract
	Reason         string       `json:"reason,omitempty"`
}

var statusCommand = cli.Command{
	Name:     "status",
	Synopsis: []string{"[--json]"},
	Summary:  "show slots, versions, trial and last failure",
	Help: "Shows, for every configured model (or the one --model names), both slots with their status and version, " +
		"which one is active and which is the previous good one, a trial in progress and the last failure with its reason. " +
		"It only reads: it never recovers, restarts, reloads or waits. It shows the state as last saved, an interrupted " +
		"trial or a restore still pending as such (the agent at start, or `modelslot recover`, finishes them), another " +
		"process holding the model's lock, and the unit as its service manager sees it now (or that the manager did " +
		"not answer within 0.7 s). It answers within a second whatever systemd does.\n\n" +
		"--json prints the same for scripts (a stable contract: docs/architecture.md); errors are JSON on stderr then.",
	Examples: []cli.Example{
		{Cmd: "status", What: "slots and versions of every model, for a person"},
		{Cmd: "--model demo status --json", What: "one model, as JSON for a script"},
	},
	Flags: func(fs *flag.FlagSet) { statusFlags(fs, &cli.Options{}) },
	Run:   runStatus,
}

func statusFlags(fs *flag.FlagSet, g *cli.Options) {
	fs.BoolVar(&g.JSON, "json", false, "print JSON for scripts")
}

func runStatus(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("status", g)
	statusFlags(fs.FlagSet, g)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	cfg, models, err := selectedModels(g)
	if err != nil {
		return err
	}
	out := statusJSON{DeviceID: cfg.DeviceID}
	uctx, cancel := context.WithTimeout(ctx, unitStatusBudget)
	defer cancel()
	for i := range models {
		ms, err := modelStatusOf(uctx, cfg, &models[i])
		if err != nil {
			return err
		}
		out.Models = append(out.Models, ms)
	}
	if g.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printStatus(g.Stdout, &out)
	return nil
}

// modelStatusOf reads what the model last saved, without the lock and without
// acting: status never recovers, restarts, reloads or waits (an interrupted
// trial is shown as such, and resumed by the agent or `modelslot recover`).
// The unit's state is read when the manager answers within ctx.
func modelStatusOf(ctx context.Context, cfg *config.Config, m *config.Model) (modelStatus, error) {
	scfg := session.StoreConfig(cfg, m)
	v, err := slots.OpenView(scfg)
	if err != nil {
		return modelStatus{}, err
	}
	held, holder, err := slots.HeldBy(scfg)
	if err != nil {
		return modelStatus{}, err
	}
	busy := ""
	if held {
		busy = (&slots.BusyError{Path: filepath.Join(scfg.Dir, "lock"), Holder: holder}).Error()
	}
	ms := toModelStatus(m.Name, v.LinkPath(), v.State(), busy)
	if ms.Trial != nil {
		ms.Trial.Interrupted = !held
	}
	if m.Unit != "" {
		ms.Unit, ms.UnitOutput = unitStatusOf(ctx, cfg, m.Unit, ms.LastFailure != nil)
	}
	return ms, nil
}

// unitStatusOf reads the unit's state and, after a failure (withOutput), its
// last output lines, when the manager answers within ctx.
func unitStatusOf(ctx context.Context, cfg *config.Config, name string, withOutput bool) (*unitJSON, []string) {
	u := &unitJSON{Name: name}
	mgr, err := systemd.New(systemd.Settings{Scope: cfg.Systemd.Scope, Bus: cfg.Systemd.Bus}, nil)
	if err != nil {
		u.Error = err.Error()
		return u, nil
	}
	defer mgr.Close()
	st, err := mgr.Status(ctx, name)
	if err != nil {
		u.Error = err.Error()
		return u, nil
	}
	u.Reachable, u.LoadState, u.ActiveState, u.SubState, u.Result, u.MainPID =
		true, st.LoadState, st.ActiveState, st.SubState, st.Result, st.MainPID
	if !withOutput {
		return u, nil
	}
	lines, err := mgr.OutputTail(ctx, name, statusOutputLines)
	if err != nil {
		slog.Debug("no unit output for status", "unit", name, "err", err)
	}
	return u, lines
}

func toModelStatus(name, link string, st *slots.State, busy string) modelStatus {
	ms := modelStatus{Name: name, Link: link, Slots: map[string]slotJSON{}, LastFailure: st.LastFailure, Restore: st.Restore, Busy: busy, state: st}
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
		sj := slotJSON{Status: s.Status, Version: s.Version, ManifestSHA256: s.ManifestSHA256, Code: s.Code, Reason: s.Reason}
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
		if t := m.Trial; t != nil {
			fmt.Fprintf(w, "  trial: %s in slot %s since %s (attempt %d)\n", t.Version, t.Slot, t.Started.Local().Format(time.DateTime), t.Attempts)
			if t.Interrupted {
				fmt.Fprintln(w, "  the trial was interrupted; the agent resumes it at start, or run `modelslot recover`")
			}
		}
		if f := st.LastFailure; f != nil {
			fmt.Fprintf(w, "  last failure: %s at %s: %s\n", f.Version, f.At.Local().Format(time.DateTime), f.Reason)
			if f.RestoreFailed != "" {
				fmt.Fprintf(w, "  ATTENTION: after going back, %s\n", f.RestoreFailed)
			}
		}
		if r := m.Restore; r != nil && (st.LastFailure == nil || st.LastFailure.RestoreFailed == "") {
			fmt.Fprintf(w, "  restore pending: %s (slot %s) is not confirmed serving yet; the agent or `modelslot recover` finishes it\n", r.Version, r.Slot)
		}
		if u := m.Unit; u != nil {
			if u.Reachable {
				fmt.Fprintf(w, "  unit %s: %s/%s", u.Name, u.ActiveState, u.SubState)
				if u.MainPID != 0 {
					fmt.Fprintf(w, ", pid %d", u.MainPID)
				}
				fmt.Fprintln(w)
			} else {
				fmt.Fprintf(w, "  unit %s: state unknown, the service manager did not answer: %s\n", u.Name, u.Error)
			}
		}
		if len(m.UnitOutput) > 0 {
			fmt.Fprintln(w, "  unit output, last lines:")
			for _, line := range m.UnitOutput {
				fmt.Fprintf(w, "    | %s\n", line)
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
