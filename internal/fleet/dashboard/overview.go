package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/reason"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
)

// Bounds of the overview, so a fleet of any size is one quick page.
const (
	maxDeviceRows = 100 // devices listed, those that need a look first
	maxOutcomes   = 100 // devices listed per rollout, failed first
	finalShown    = 5   // completed or aborted rollouts kept on the page
)

// overviewPage is what the overview fragment shows.
type overviewPage struct {
	Devices   int
	Online    int
	Models    []modelView
	Rollouts  []rolloutView
	Rows      []store.Device // the devices listed
	Generated time.Time
}

// modelView is one model's devices by version and by state, and its chart.
type modelView struct {
	Name      string
	Devices   int
	ByVersion []count
	ByStatus  []count
	Failures  []count // last failure reason of the devices that failed
	Chart     chart
}

type count struct {
	Key string
	N   int
	Bar bar
}

// rolloutView is one rollout with what may be done to it.
type rolloutView struct {
	*fleet.Status
	Stages   []stageView
	Failures []count
	Actions  []action
	Started  []store.Outcome // of the devices that started it: the failed first, at most maxOutcomes
}

// stageView is one stage of a rollout: its counts and its bar.
type stageView struct {
	Index  int
	Share  string // "25 %"
	Opened bool
	fleet.StageCount
	Bar stageBar
}

// action is a button: the API request it sends.
type action struct {
	Label   string
	Path    string
	Body    string
	Confirm string // asked before it is sent, for what cannot be undone
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	p, err := h.overviewOf(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, "overview", p)
}

func (h *Handler) overviewOf(ctx context.Context) (*overviewPage, error) {
	devs, err := h.c.DB.Devices(ctx, "")
	if err != nil {
		return nil, err
	}
	p := &overviewPage{Devices: len(devs), Generated: h.now()}
	byModel := map[string][]store.Device{}
	for _, d := range devs {
		byModel[d.Model] = append(byModel[d.Model], d)
		if d.Online {
			p.Online++
		}
	}
	for _, name := range sortedKeys(byModel) {
		m, err := h.modelOf(ctx, name, byModel[name])
		if err != nil {
			return nil, err
		}
		p.Models = append(p.Models, m)
	}
	if p.Rollouts, err = h.rolloutsOf(ctx); err != nil {
		return nil, err
	}
	p.Rows = deviceRows(devs)
	return p, nil
}

func (h *Handler) modelOf(ctx context.Context, name string, devs []store.Device) (modelView, error) {
	versions, statuses, failures := map[string]int{}, map[string]int{}, map[string]int{}
	for _, d := range devs {
		versions[cmp.Or(d.Version, "(none)")]++
		statuses[d.Status]++
		if failed(d) {
			failures[cmp.Or(d.Reason, "unknown")]++
		}
	}
	changes, asOf, err := h.versionChanges(ctx, name)
	if err != nil {
		return modelView{}, err
	}
	return modelView{Name: name, Devices: len(devs), ByVersion: counts(versions, len(devs)), ByStatus: counts(statuses, len(devs)),
		Failures: counts(failures, len(devs)), Chart: newChart(changes, asOf)}, nil
}

// failed: a device whose last update ended badly. A rollback someone asked
// for (reason manual) is not a failure.
func failed(d store.Device) bool {
	switch d.Status {
	case report.StatusFailed, report.StatusRolledBack:
		return d.Reason != string(reason.Manual)
	}
	return false
}

// rolloutsOf lists the rollouts newest first: every one not final, and the
// last few final ones.
func (h *Handler) rolloutsOf(ctx context.Context) ([]rolloutView, error) {
	rs, err := h.c.DB.Rollouts(ctx)
	if err != nil {
		return nil, err
	}
	var out []rolloutView
	final := 0
	for i := len(rs) - 1; i >= 0; i-- {
		if rollout.Final(rs[i].Doc.State) {
			if final++; final > finalShown {
				continue
			}
		}
		s, err := h.c.Status(ctx, rs[i].Doc.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, viewOf(s))
	}
	return out, nil
}

func viewOf(s *fleet.Status) rolloutView {
	v := rolloutView{Status: s, Failures: counts(s.Failures, s.Failed), Started: started(s.Outcomes)}
	for i, sc := range s.Stages {
		v.Stages = append(v.Stages, stageView{Index: i, Share: share(s.Rollout.Stages[i].Share), Opened: i <= s.Rollout.Stage,
			StageCount: sc, Bar: newStageBar(sc)})
	}
	for _, op := range s.Actions {
		a := action{Label: op, Path: "/v1/rollouts/" + pathEscape(s.Rollout.ID) + "/" + op, Body: "{}"}
		if op == fleet.OpAbort {
			a.Confirm = fmt.Sprintf("Abort rollout %s for good?", s.Rollout.ID)
			if s.Rollout.AbortRollback {
				a.Confirm += " The devices that took it roll back."
			}
		}
		v.Actions = append(v.Actions, a)
	}
	return v
}

// started lists the outcomes worth a look first: failed, then in progress,
// then succeeded, at most maxOutcomes.
func started(outs []store.Outcome) []store.Outcome {
	rank := map[string]int{store.OutcomeFailed: 0, store.OutcomeInProgress: 1}
	order := func(o store.Outcome) int {
		if r, ok := rank[o.Status]; ok {
			return r
		}
		return 2
	}
	outs = slices.Clone(outs)
	slices.SortStableFunc(outs, func(a, b store.Outcome) int { return cmp.Compare(order(a), order(b)) })
	return outs[:min(len(outs), maxOutcomes)]
}

// rollbackAction is the button that rolls one device's model back.
func rollbackAction(d store.Device) action {
	body, _ := json.Marshal(map[string]string{"model": d.Model})
	return action{Label: "roll back", Path: "/v1/devices/" + pathEscape(d.ID) + "/rollback", Body: string(body),
		Confirm: fmt.Sprintf("Roll %s on %s back to its previous version?", d.Model, d.ID)}
}

// deviceRows picks the devices listed: those that need a look (failed,
// offline) first, then by id, at most maxDeviceRows.
func deviceRows(devs []store.Device) []store.Device {
	rows := slices.Clone(devs)
	slices.SortStableFunc(rows, func(a, b store.Device) int {
		return cmp.Compare(attention(b), attention(a))
	})
	return rows[:min(len(rows), maxDeviceRows)]
}

func attention(d store.Device) int {
	n := 0
	if failed(d) {
		n += 2
	}
	if !d.Online {
		n++
	}
	return n
}

// counts orders a tally by count (then key) with a bar against total.
func counts(m map[string]int, total int) []count {
	var out []count
	for k, n := range m {
		out = append(out, count{Key: k, N: n, Bar: newBar(n, total)})
	}
	slices.SortFunc(out, func(a, b count) int { return cmp.Or(cmp.Compare(b.N, a.N), strings.Compare(a.Key, b.Key)) })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func share(bp uint32) string {
	if bp%100 == 0 {
		return fmt.Sprintf("%d %%", bp/100)
	}
	return fmt.Sprintf("%.2f %%", float64(bp)/100)
}

func pathEscape(s string) string { return url.PathEscape(s) }
