package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/verify"
)

var now0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// rolloutRig is an agent whose one model follows rollouts signed by key, with
// a clock and an active version the test sets.
type rolloutRig struct {
	t      *testing.T
	a      *Agent
	f      *follower
	key    *verify.PrivateKey
	salt   string // puts device "d" in stage 1 of stages()
	active string
	now    time.Time
}

func rolloutKey(t *testing.T, seed byte) *verify.PrivateKey {
	k, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRolloutRig(t *testing.T, extra string) *rolloutRig {
	t.Helper()
	root := t.TempDir()
	key := rolloutKey(t, 7)
	if err := verify.WriteKeyPair(filepath.Join(root, "rollout"), key); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("device_id = \"d\"\nstate_root = %q\n[[model]]\nname = \"demo\"\nrollout_channel = \"stable\"\nrollout_keys = [%q]\n%s",
		root, filepath.Join(root, "rollout.pub"), extra)))
	if err != nil {
		t.Fatal(err)
	}
	rig := &rolloutRig{t: t, key: key, active: "v1", now: now0}
	rig.start(cfg)
	for i := 0; rig.salt == ""; i++ {
		if r := (&rollout.Rollout{Salt: fmt.Sprint("s", i), Stages: stages()}); r.StageOf("d") == 1 {
			rig.salt = r.Salt
		}
	}
	return rig
}

// start (re)creates the agent and its follower on cfg, as an agent start does.
func (rig *rolloutRig) start(cfg *config.Config) {
	a, err := New(cfg)
	if err != nil {
		rig.t.Fatal(err)
	}
	a.metrics = newMetrics(cfg)
	o, err := session.OpenOutbox(cfg, &cfg.Models[0])
	if err != nil {
		rig.t.Fatal(err)
	}
	a.outboxes = map[string]*report.Outbox{"demo": o}
	a.rolloutSources()
	rig.a, rig.f = a, a.rollouts["demo"]
	if rig.f == nil {
		rig.t.Fatal("no follower for the model")
	}
	rig.f.now = func() time.Time { return rig.now }
	rig.f.active = func() string { return rig.active }
}

func stages() []rollout.Stage {
	return []rollout.Stage{
		{Share: 2000, Success: 10000, MaxFailures: 1},
		{Share: 5000, Success: 10000, MaxFailures: 1},
		{Share: 10000, Success: 10000, MaxFailures: 1},
	}
}

func (rig *rolloutRig) doc(rev uint64, state string, stage int, change ...func(*rollout.Rollout)) []byte {
	r := &rollout.Rollout{Schema: rollout.Schema, ID: "r1", Revision: rev, Model: "demo", Channel: "stable",
		Target: rollout.Target{Version: "v2", Sequence: 2, ManifestURL: "http://127.0.0.1:1/repo/demo/manifests/v2.json",
			ManifestSHA256: strings.Repeat("ab", 32)},
		Salt: rig.salt, Stages: stages(), State: state, Stage: stage, AbortRollback: true,
		IssuedAt: now0, ExpiresAt: now0.Add(time.Hour)}
	key := rig.key
	for _, c := range change {
		c(r)
	}
	if r.Reason == "signed by a stranger" {
		key = rolloutKey(rig.t, 8)
	}
	env, err := rollout.Sign(r, key)
	if err != nil {
		rig.t.Fatal(err)
	}
	return env
}

func (rig *rolloutRig) offer(env []byte) {
	rig.t.Helper()
	if err := rig.f.offer(env, "test"); err != nil {
		rig.t.Fatal(err)
	}
	rig.f.step()
}

func (rig *rolloutRig) queued() []Command {
	_, cmds := rig.a.Inbox.Pending()
	return cmds
}

func TestFollowerInstallsOnceItsStageOpens(t *testing.T) {
	rig := newRolloutRig(t, "")
	rig.offer(rig.doc(1, rollout.StateRunning, 0))
	if q := rig.queued(); len(q) != 0 {
		t.Fatalf("device of stage 1 queued %v while only stage 0 is open", q)
	}
	rig.offer(rig.doc(2, rollout.StateRunning, 1))
	rig.f.step()
	q := rig.queued()
	if len(q) != 1 || q[0].Action != ActionInstall || q[0].Rollout != "r1" || !strings.HasSuffix(q[0].Source, "/manifests/v2.json") {
		t.Fatalf("queued %+v, want one install of the target under r1", q)
	}
	if !rig.f.st.Took {
		t.Fatal("Took not recorded before the install could run")
	}
}

func TestFollowerRefusesEachBadDocumentWithItsReasonOnce(t *testing.T) {
	rig := newRolloutRig(t, "")
	rig.offer(rig.doc(5, rollout.StateRunning, 0))
	bad := map[string][]byte{
		rollout.ReasonUnknownKey:  rig.doc(6, rollout.StateRunning, 2, func(r *rollout.Rollout) { r.Reason = "signed by a stranger" }),
		rollout.ReasonWrongTarget: rig.doc(6, rollout.StateRunning, 2, func(r *rollout.Rollout) { r.Channel = "beta" }),
		rollout.ReasonInvalid:     []byte(`{"payloadType":"x"}`),
	}
	for reason, env := range bad {
		rig.offer(env)
		rig.offer(env) // seen again (a retained message, the next poll): not reported twice
		if got := rig.f.pending[len(rig.f.pending)-1].FailureReason; got != reason {
			t.Fatalf("refusal reason %q, want %q", got, reason)
		}
	}
	rig.offer(rig.doc(4, rollout.StateRunning, 2)) // an older revision replayed
	rig.now = now0.Add(2 * time.Hour)
	rig.offer(rig.doc(7, rollout.StateRunning, 2)) // expired by now
	if n := len(rig.f.pending); n != 6 {           // 3 above, the replay, the expired one, and the held copy gone stale
		t.Fatalf("%d refusal events, want 6: %+v", n, rig.f.pending)
	}
	if rig.f.held.Revision != 5 || len(rig.queued()) != 0 {
		t.Fatalf("a refused document changed something: held revision %d, queued %v", rig.f.held.Revision, rig.queued())
	}
	if left := rig.f.flush(context.Background()); left != 0 {
		t.Fatalf("%d events not flushed", left)
	}
	evs, err := rig.a.outboxes["demo"].Pending("mqtt", 100)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ev := range evs {
		if ev.Event != report.RolloutEventType || ev.Status != report.StatusRefused || len(ev.Logs) == 0 || ev.DeviceID != "d" {
			t.Fatalf("refusal event %+v", ev)
		}
		reasons = append(reasons, ev.FailureReason)
	}
	if got := strings.Join(reasons[3:], " "); got != "rollout_stale rollout_stale rollout_stale" {
		t.Fatalf("reasons %v", reasons)
	}
}

func TestFollowerHaltStopsAQueuedInstallBeforeItRuns(t *testing.T) {
	rig := newRolloutRig(t, "")
	var installs atomic.Int64
	rig.a.Install = func(context.Context, *session.Session, string, session.InstallOptions) error {
		installs.Add(1)
		return nil
	}
	rig.offer(rig.doc(1, rollout.StateRunning, 1))
	q := rig.queued()
	if len(q) != 1 {
		t.Fatalf("queued %v", q)
	}
	rig.offer(rig.doc(2, rollout.StateHalted, 1, func(r *rollout.Rollout) { r.Reason = "2 devices failed" }))
	err := rig.a.runCommand(context.Background(), q[0])
	if !errors.Is(err, errGated) || !strings.Contains(err.Error(), "halted") || installs.Load() != 0 {
		t.Fatalf("runCommand of a halted rollout's install = %v (installs %d), want it gated", err, installs.Load())
	}
	rig.a.finish(0, q[0], err)
	if rig.f.st.Finished {
		t.Fatal("a gated install counted as finished: resuming the rollout could never install")
	}
}

func TestFollowerOutcomeIsFinal(t *testing.T) {
	rig := newRolloutRig(t, "")
	rig.offer(rig.doc(1, rollout.StateRunning, 1))
	c := rig.queued()[0]
	rig.a.finish(0, c, fmt.Errorf("install v2: %w: check failed", verify.ErrRejected))
	rig.a.Inbox.Done(0)
	for rev := uint64(2); rev < 5; rev++ {
		rig.offer(rig.doc(rev, rollout.StateRunning, 2))
	}
	for _, q := range rig.queued() {
		if q.ID != c.ID {
			t.Fatalf("a finished rollout queued %v again", q)
		}
	}
	// And it stays final across an agent restart.
	rig.start(rig.a.Config)
	rig.offer(rig.doc(9, rollout.StateRunning, 2))
	if !rig.f.st.Finished || rig.f.held.Revision != 9 {
		t.Fatalf("after restart: %+v", rig.f.st)
	}
}

func TestFollowerAbortRollsBackOnlyADeviceThatTookIt(t *testing.T) {
	rig := newRolloutRig(t, "")
	rig.offer(rig.doc(1, rollout.StateRunning, 1))
	install := rig.queued()[0]
	rig.active = "v2"
	rig.a.finish(0, install, nil)
	rig.offer(rig.doc(2, rollout.StateAborted, 1))
	q := rig.queued()
	if last := q[len(q)-1]; last.Action != ActionRollback || last.Rollout != "r1" {
		t.Fatalf("queued %+v, want a rollback under r1", q)
	}

	other := newRolloutRig(t, "") // on v2 by other means: an abort is none of its business
	other.active = "v2"
	other.offer(other.doc(2, rollout.StateAborted, 1))
	if q := other.queued(); len(q) != 0 {
		t.Fatalf("a device that did not take the rollout queued %v", q)
	}
}

func TestFollowerWaitsForTheMaintenanceWindow(t *testing.T) {
	rig := newRolloutRig(t, "maintenance_window = \"02:00-04:00\"\n")
	rig.now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	rig.offer(rig.doc(1, rollout.StateRunning, 2, func(r *rollout.Rollout) { r.IssuedAt, r.ExpiresAt = rig.now, rig.now.Add(48*time.Hour) }))
	if q := rig.queued(); len(q) != 0 {
		t.Fatalf("installed outside the window: %v", q)
	}
	rig.now = time.Date(2026, 12, 2, 3, 0, 0, 0, time.Local)
	rig.f.step()
	if q := rig.queued(); len(q) != 1 {
		t.Fatalf("queued %v inside the window, want the install", q)
	}
}

func TestAModelFollowingRolloutsDoesNotPollItsChannel(t *testing.T) {
	rig := newRolloutRig(t, "source = \"http://127.0.0.1:1/repo/demo/channels/stable.json\"\n[agent]\nchannel_poll = \"1s\"\n")
	loops := rig.a.commandSources() // the rollout follower only; no channel poller
	if len(loops) != 1 {
		t.Fatalf("%d loops, want only the rollout follower's", len(loops))
	}
}

func TestFollowerDefersItsOwnShareOfRolloutDefer(t *testing.T) {
	rig := newRolloutRig(t, "rollout_defer = \"1h\"\n")
	rig.offer(rig.doc(1, rollout.StateRunning, 2))
	share := time.Duration(rollout.Bucket("d", rig.salt+"/defer")) * time.Hour / rollout.FullShare
	if share < time.Minute {
		t.Fatalf("device d defers only %s under the rig's salt; pick another salt for this test", share)
	}
	if q := rig.queued(); len(q) != 0 {
		t.Fatalf("installed at once despite a deferral of %s: %v", share, q)
	}
	if !rig.f.st.Joined.Equal(now0) {
		t.Fatalf("joined at %s, want %s", rig.f.st.Joined, now0)
	}
	rig.now = now0.Add(share - time.Second)
	rig.f.step()
	if q := rig.queued(); len(q) != 0 {
		t.Fatalf("installed a second before its deferral ended: %v", q)
	}
	rig.now = now0.Add(share)
	rig.f.step()
	if q := rig.queued(); len(q) != 1 {
		t.Fatalf("queued %v once the deferral passed, want the install", q)
	}
}
