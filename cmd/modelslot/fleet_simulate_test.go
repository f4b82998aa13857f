package main

import (
	"crypto/rand"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/rollout"
	"github.com/modelslot/modelslot/verify"
)

// TestFleetSimulateFollowsARolloutUntilConverged runs `modelslot fleet
// simulate` as a user would: 4 simulated devices install v1 from the channel,
// then follow the retained rollout document of v2 (one stage, every device)
// until all run it; the JSON summary says so. With --fail-version v2 the probe
// stand-in fails v2 on every device: each reverts to v1, and the command
// exits 1 when --duration passes without --until reached.
func TestFleetSimulateFollowsARolloutUntilConverged(t *testing.T) {
	for _, tc := range []struct {
		name, fail        string
		code              int
		converged, failed int
	}{
		{name: "good", code: 0, converged: 4},
		{name: "bad", fail: "v2", code: 1, converged: 0, failed: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &testFleet{t: t, repo: newRepoServer(t), broker: mqtttest.Start(t), secrets: t.TempDir()}
			k, err := verify.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			f.key, f.keyPub = k, filepath.Join(t.TempDir(), "rollout")
			if err := verify.WriteKeyPair(f.keyPub, k); err != nil {
				t.Fatal(err)
			}
			f.keyPub += ".pub"
			f.repo.publish(makeModel(t, 8<<10), "v1")
			f.repo.publish(makeModel(t, 8<<10), "v2")
			f.pub = f.connect("controller")
			f.salt = "s"
			f.publish(stableTopic, f.doc(1, rollout.StateRunning, 0, []rollout.Stage{{Share: 10000, Success: 9500, MaxFailures: 100}}))
			args := []string{"--model", "demo", "fleet", "simulate", "--json", "--devices", "4", "--broker", f.broker.URL(),
				"--source", f.repo.url + "/demo/manifests/v1.json", "--trusted-keys", f.repo.pub, "--rollout-keys", f.keyPub,
				"--state-dir", t.TempDir(), "--until", "v2", "--progress", "200ms", "--duration", "20s"}
			if tc.fail != "" {
				args = append(args, "--fail-version", tc.fail, "--duration", "8s")
			}
			cmd := exec.Command(binary, args...) // no --config: the simulator needs none
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			r := resultOf(cmd, cmd.Run(), out.String(), errb.String(), t)
			if r.code != tc.code {
				t.Fatalf("want exit %d: %v", tc.code, r)
			}
			var sum struct { // the summary's JSON, as a script reads it
				Devices, Converged, Failed, Undelivered int
				Installs                                int64
				Counts                                  map[string]int
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &sum); err != nil {
				t.Fatalf("summary is not JSON: %v\n%v", err, r)
			}
			if sum.Devices != 4 || sum.Converged != tc.converged || sum.Failed != tc.failed || sum.Undelivered != 0 && tc.code == 0 {
				t.Fatalf("summary %+v; want 4 devices, %d converged on v2, %d failed", sum, tc.converged, tc.failed)
			}
			if tc.fail != "" && sum.Counts["v1/ok"] != 4 {
				t.Fatalf("after failing v2, want every device back on v1: %+v", sum.Counts)
			}
			if sum.Installs < 4 {
				t.Fatalf("want at least 4 installs of v2 started, got %d", sum.Installs)
			}
		})
	}
}
