package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// Device-side rollout tests: real agents, a real broker and repository; the
// test signs and publishes the rollout documents a controller would.

func fleetStages() []rollout.Stage {
	return []rollout.Stage{
		{Share: 2500, Success: 10000, MaxFailures: 1},
		{Share: 5000, Success: 10000, MaxFailures: 1},
		{Share: 10000, Success: 10000, MaxFailures: 1},
	}
}

const (
	goodV2   = "v2:downloading v2:installing v2:activating v2:confirming v2:success"
	failedV2 = "v2:downloading v2:installing v2:activating v2:confirming v2:rolling_back v2:rolled_back"
)

// devicesIn returns the indexes of the devices in stage s.
func (f *testFleet) devicesIn(s int) []int {
	var out []int
	for i := range f.devices {
		if f.stageOf(i, fleetStages()) == s {
			out = append(out, i)
		}
	}
	return out
}

func (f *testFleet) waitStory(i int, want string) {
	f.t.Helper()
	testutil.WaitFor(f.t, 30*time.Second, f.devices[i].id+": "+want, func() bool { return f.story(f.devices[i].id) == want })
}

// settle gives devices that must not act a moment in which they would have.
func settle() { time.Sleep(1500 * time.Millisecond) }

// TestAgentsFollowAStagedRolloutAndAnOfflineDeviceConverges: each device
// installs the target only once its stage is opened; a device that was
// offline for the whole rollout installs it when it comes back (the retained
// document waits for it). Every event carries the rollout id.
func TestAgentsFollowAStagedRolloutAndAnOfflineDeviceConverges(t *testing.T) {
	f := newFleet(t, 4, "")
	stages := fleetStages()
	f.pickSalt(stages, 1, 1, 2)
	last := f.devicesIn(2)
	offline := f.devices[last[1]]
	for _, d := range f.devices {
		if d != offline {
			d.startAgent()
		}
	}
	for stage := range stages {
		f.publish(stableTopic, f.doc(uint64(stage+1), rollout.StateRunning, stage, stages))
		for _, i := range f.devicesIn(stage) {
			if f.devices[i] != offline {
				f.waitStory(i, goodV2)
			}
		}
		settle()
		for later := stage + 1; later < len(stages); later++ {
			for _, i := range f.devicesIn(later) {
				if got := f.story(f.devices[i].id); got != "" {
					t.Fatalf("%s of stage %d acted while stage %d was open: %s", f.devices[i].id, later, stage, got)
				}
			}
		}
	}
	f.publish(stableTopic, f.doc(4, rollout.StateCompleted, 2, stages))
	if got := f.v2Gets.Load(); got != 3 {
		t.Fatalf("v2's manifest fetched %d times by 3 online devices", got)
	}
	offline.startAgent()
	f.waitStory(last[1], goodV2)
	if got := f.activeVersions(); got != "v2 v2 v2 v2" {
		t.Fatalf("active versions %s", got)
	}
}

// TestHaltedRolloutStartsNoOtherDevice: v2 fails its health check on the
// first stage's device, which goes back to v1; once the rollout is halted, no
// device of the later stages downloads v2 even though their stages are open,
// and the failed device does not try again.
func TestHaltedRolloutStartsNoOtherDevice(t *testing.T) {
	f := newFleet(t, 4, failV2)
	stages := fleetStages()
	f.pickSalt(stages, 1, 1, 2)
	f.startAll()
	first := f.devicesIn(0)[0]
	f.publish(stableTopic, f.doc(1, rollout.StateRunning, 0, stages))
	f.waitStory(first, failedV2)
	f.publish(stableTopic, f.doc(2, rollout.StateHalted, 2, stages, func(r *rollout.Rollout) { r.Reason = "1 device failed in stage 0" }))
	settle()
	if got := f.v2Gets.Load(); got != 1 {
		t.Fatalf("v2's manifest fetched %d times; only the first stage's device may have", got)
	}
	if got := f.activeVersions(); got != "v1 v1 v1 v1" {
		t.Fatalf("active versions %s after the halt", got)
	}
	for i := range f.devices {
		if want := map[bool]string{true: failedV2, false: ""}[i == first]; f.story(f.devices[i].id) != want {
			t.Fatalf("%s: %q, want %q", f.devices[i].id, f.story(f.devices[i].id), want)
		}
	}
}

// TestAbortRollsBackWhoTookItAndAReturningDeviceIgnoresIt: aborting a rollout
// (abort_rollback) rolls back the device that took it; a device that was
// offline meanwhile comes back and does not install the aborted rollout.
func TestAbortRollsBackWhoTookItAndAReturningDeviceIgnoresIt(t *testing.T) {
	f := newFleet(t, 2, "")
	stages := fleetStages()
	f.pickSalt(stages, 1, 0, 1)
	first, later := f.devicesIn(0)[0], f.devicesIn(2)[0]
	f.devices[first].startAgent()
	f.publish(stableTopic, f.doc(1, rollout.StateRunning, 0, stages))
	f.waitStory(first, goodV2)
	f.publish(stableTopic, f.doc(2, rollout.StateAborted, 2, stages, func(r *rollout.Rollout) { r.Reason = "by a person" }))
	f.waitStory(first, goodV2+" v1:rolling_back v1:rolled_back")
	f.devices[later].startAgent()
	settle()
	if got := f.story(f.devices[later].id); got != "" || f.v2Gets.Load() != 1 {
		t.Fatalf("the returning device acted on an aborted rollout: %q (v2 fetched %d times)", got, f.v2Gets.Load())
	}
	if got := f.activeVersions(); got != "v1 v1" {
		t.Fatalf("active versions %s", got)
	}
}

// TestRolloutRefusals: a document signed by an unknown key, an expired one, one
// on the wrong topic (for another channel or model), and one whose target is a
// manifest the device's trusted_keys did not sign are each refused with an
// event saying why, and the device stays on v1.
func TestRolloutRefusals(t *testing.T) {
	f := newFleet(t, 1, "")
	stages := []rollout.Stage{{Share: rollout.FullShare, Success: 1, MaxFailures: 1}}
	f.salt = "s"
	f.devices[0].startAgent()
	stranger, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		topic string
		doc   []byte
		want  string
	}{
		{stableTopic, signWith(t, f.doc(1, rollout.StateRunning, 0, stages), stranger), "refused:rollout_unknown_key"},
		{stableTopic, f.doc(2, rollout.StateRunning, 0, stages, func(r *rollout.Rollout) {
			r.IssuedAt, r.ExpiresAt = time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)
		}), "refused:rollout_stale"},
		{stableTopic, f.doc(3, rollout.StateRunning, 0, stages, func(r *rollout.Rollout) { r.Channel = "beta" }), "refused:rollout_wrong_target"},
		{"modelslot/rollouts/demo/beta", f.doc(4, rollout.StateRunning, 0, stages), ""}, // not a topic the device follows
		{stableTopic, f.doc(5, rollout.StateRunning, 0, stages, func(r *rollout.Rollout) { r.Model = "other" }), "refused:rollout_wrong_target"},
	}
	var story []string
	for _, s := range steps {
		f.publish(s.topic, s.doc)
		if s.want != "" {
			story = append(story, s.want)
		}
		f.waitStory(0, strings.Join(story, " "))
	}
	// A valid rollout whose target manifest is signed by another publisher.
	other := newRepoServer(t)
	other.publish(makeModel(t, 1000), "v3")
	f.publish(stableTopic, f.doc(6, rollout.StateRunning, 0, stages, func(r *rollout.Rollout) {
		r.Target = targetIn(t, other, "v3", 3)
	}))
	f.waitStory(0, strings.Join(story, " ")+" v3:failed")
	for _, ev := range f.events.all() {
		if ev.TargetVersion == "v3" && (ev.FailureReason != "verification_failed" || !strings.Contains(strings.Join(ev.Logs, " "), "untrusted key")) {
			t.Fatalf("the untrusted manifest's event: %+v", ev)
		}
	}
	if got := f.activeVersions(); got != "v1" {
		t.Fatalf("active %s after refusals", got)
	}
}

// A valid rollout whose URL serves another signed manifest than the one it
// pins (a mirror swapping versions under the rollout's name) is refused: the
// device installs only the manifest the signed document names by digest.
func TestRolloutPinnedManifestIsEnforced(t *testing.T) {
	f := newFleet(t, 1, "")
	stages := []rollout.Stage{{Share: rollout.FullShare, Success: 1, MaxFailures: 1}}
	f.salt = "s"
	f.devices[0].startAgent()
	f.publish(stableTopic, f.doc(1, rollout.StateRunning, 0, stages, func(r *rollout.Rollout) {
		r.Target.ManifestSHA256 = targetIn(t, f.repo, "v1", 1).ManifestSHA256 // v2's URL, v1's digest
	}))
	f.waitStory(0, "v2:failed")
	for _, ev := range f.events.all() {
		if ev.TargetVersion == "v2" && (ev.FailureReason != "verification_failed" || !strings.Contains(strings.Join(ev.Logs, " "), "pinned")) {
			t.Fatalf("the mismatched pin's event: %+v", ev)
		}
	}
	if got := f.activeVersions(); got != "v1" {
		t.Fatalf("active %s after a mismatched pin", got)
	}
}

func signWith(t *testing.T, env []byte, key *verify.PrivateKey) []byte {
	t.Helper()
	e, err := verify.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	b, err := verify.Sign(verify.PayloadRollout, payload, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func targetIn(t *testing.T, r *repoServer, version string, seq uint64) rollout.Target {
	env, err := os.ReadFile(filepath.Join(r.dir, "demo", "manifests", version+".json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(env)
	return rollout.Target{Version: version, Sequence: seq, ManifestURL: r.url + "/demo/manifests/" + version + ".json",
		ManifestSHA256: hex.EncodeToString(sum[:])}
}
