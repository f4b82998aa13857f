package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/modelslot/modelslot/internal/agent"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
)

// TestActionsAreWhatTheAPIAllows: for a rollout in every state, each
// operation the API accepts is in Actions (and in the status the API
// returns), and each one it refuses with 409 is not — the table the
// dashboard offers its buttons from cannot drift from the API.
func TestActionsAreWhatTheAPIAllows(t *testing.T) {
	r := newRig(t, "halt")
	srv := httptest.NewServer(r.c.handler())
	defer srv.Close()
	states := []string{rollout.StateRunning, rollout.StatePaused, rollout.StateHalted, rollout.StateAborted, rollout.StateCompleted}
	want := map[string][]string{
		rollout.StateRunning: {OpPause, OpAbort}, rollout.StatePaused: {OpResume, OpAbort},
		rollout.StateHalted: {OpAbort}, rollout.StateAborted: nil, rollout.StateCompleted: nil,
	}
	for _, state := range states {
		if got := Actions(state); !slices.Equal(got, want[state]) {
			t.Errorf("Actions(%s) = %v, want %v", state, got, want[state])
		}
		for _, op := range []string{OpPause, OpResume, OpAbort} {
			id := fmt.Sprintf("r-%s-%s", state, op)
			ro := &store.Rollout{Doc: rollout.Rollout{Schema: rollout.Schema, ID: id, Revision: 1, Model: "demo", Channel: id, State: state,
				Stages: twoStages, Salt: "s", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
				Target: rollout.Target{Version: "v2", Sequence: 2, ManifestURL: r.repo.URL + "/v2.json", ManifestSHA256: strings.Repeat("ab", 32)}},
				StageOpened: t0, Created: t0, Updated: t0}
			if err := r.c.DB.CreateRollout(context.Background(), ro); err != nil {
				t.Fatal(err)
			}
			var s Status
			if code := call(t, srv.URL, "GET", "/v1/rollouts/"+id, "", &s); code != http.StatusOK || !slices.Equal(s.Actions, Actions(state)) {
				t.Fatalf("status of a %s rollout: %d, actions %v", state, code, s.Actions)
			}
			code := call(t, srv.URL, "POST", "/v1/rollouts/"+id+"/"+op, "", nil)
			if offered := slices.Contains(Actions(state), op); (code == http.StatusOK) != offered || (!offered && code != http.StatusConflict) {
				t.Errorf("%s on a %s rollout: API answered %d, Actions offers it: %v", op, state, code, offered)
			}
		}
	}
}

// TestStatusCountsEachStage: the status counts every stage's devices by
// result, opened or not, the same way the tally counts the cohort.
func TestStatusCountsEachStage(t *testing.T) {
	r := newRig(t, "halt")
	a, b := inStage(twoStages, 0, 0), inStage(twoStages, 0, 1)
	c, d := inStage(twoStages, 1, 0), inStage(twoStages, 1, 1)
	for _, id := range []string{a, b, c, d} {
		r.device(id, report.StatusSuccess, "v1", "", "")
	}
	r.create(twoStages...)
	r.device(a, report.StatusFailed, "v1", "r1", "check_failed")
	r.device(b, report.StatusDownloading, "v1", "r1", "")
	r.device(d, report.StatusSuccess, "v2", "", "") // installed by hand: where the rollout wants it
	s, err := r.c.Status(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []StageCount{{Devices: 2, Failed: 1, InProgress: 1}, {Devices: 2, Succeeded: 1, Waiting: 1}}
	if !slices.Equal(s.Stages, want) {
		t.Fatalf("stages %+v, want %+v", s.Stages, want)
	}
	if s.Cohort != 2 || s.Failed != 1 || s.Succeeded != 0 {
		t.Fatalf("cohort %d failed %d succeeded %d: the opened stage only", s.Cohort, s.Failed, s.Succeeded)
	}
}

// TestRollbackDeviceSendsTheAgentsCommand: POST /v1/devices/{id}/rollback
// puts one command on the device's command topic of the real broker, which
// the agent's own parser accepts as a rollback of that model; an unknown
// device or model is refused before anything is sent, and the token is
// required like everywhere under /v1/.
func TestRollbackDeviceSendsTheAgentsCommand(t *testing.T) {
	r := newRig(t, "halt")
	r.c.APIToken = "t0ken"
	r.device("dev-1", report.StatusSuccess, "v2", "", "")
	got := make(chan []byte, 10)
	if tok := r.sub.Subscribe("modelslot/+/commands", 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Topic() == "modelslot/dev-1/commands" {
			got <- m.Payload()
		} else {
			got <- []byte("wrong topic " + m.Topic())
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	srv := httptest.NewServer(r.c.handler())
	defer srv.Close()
	for _, tt := range []struct {
		path, body, token string
		want              int
	}{
		{"/v1/devices/dev-1/rollback", `{"model": "demo"}`, "", http.StatusUnauthorized},
		{"/v1/devices/dev-9/rollback", `{"model": "demo"}`, "t0ken", http.StatusNotFound},
		{"/v1/devices/dev-1/rollback", `{"model": "other"}`, "t0ken", http.StatusNotFound},
		{"/v1/devices/dev-1/rollback", `{}`, "t0ken", http.StatusBadRequest},
	} {
		if code := callAs(t, srv.URL, tt.token, "POST", tt.path, tt.body, nil); code != tt.want {
			t.Errorf("POST %s %s (token %q): %d, want %d", tt.path, tt.body, tt.token, code, tt.want)
		}
	}
	var sent Sent
	if code := callAs(t, srv.URL, "t0ken", "POST", "/v1/devices/dev-1/rollback", `{"model": "demo"}`, &sent); code != http.StatusAccepted {
		t.Fatalf("rollback: %d", code)
	}
	select {
	case b := <-got:
		cfg := &config.Config{Models: []config.Model{{Name: "demo"}}}
		cmd, err := agent.ParseCommand(b, cfg)
		if err != nil || cmd.Action != agent.ActionRollback || cmd.Model != "demo" || cmd.ID != sent.CommandID {
			t.Fatalf("the agent reads %s as %+v, %v; want a rollback of demo under %s", b, cmd, err, sent.CommandID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no command reached the device's topic")
	}
	select {
	case b := <-got:
		t.Fatalf("a refused request sent a command too: %s", b)
	case <-time.After(300 * time.Millisecond):
	}
}

func call(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	return callAs(t, base, "", method, path, body, out)
}

func callAs(t *testing.T, base, token, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode
}
