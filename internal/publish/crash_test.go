package publish

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/verify"
)

const childEnv = "MODELSLOT_PUBLISH_CHILD" // repo|dir|version for TestPublishChild

// TestPublishChild is the publish a crash test kills: it runs only when the
// parent sets childEnv.
func TestPublishChild(t *testing.T) {
	args := strings.Split(os.Getenv(childEnv), "|")
	if len(args) != 3 {
		t.Skip("run by TestKilledPublishLeavesEveryManifestInstallable")
	}
	o := opts(args[0], args[2], testKey(t))
	o.PackSize = 64 << 10 // several packs, so the kill after the first leaves work undone
	if _, err := Publish(context.Background(), args[1], o); err != nil {
		t.Fatal(err)
	}
}

// TestKilledPublishLeavesEveryManifestInstallable kills publish (SIGKILL, in a
// child process) at each of its crash points: every manifest left in the
// repository is installable, the channel names one that is, and the next
// publish works.
func TestKilledPublishLeavesEveryManifestInstallable(t *testing.T) {
	points := []string{}
	for _, n := range crashpoint.Names() {
		if strings.HasPrefix(n, "publish.") {
			points = append(points, n)
		}
	}
	if !slices.Equal(points, []string{"publish.after-index", "publish.after-manifest", "publish.after-pack"}) {
		t.Fatalf("publish's crash points are %v: cover each new one here", points)
	}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			k, repo, dir := testKey(t), t.TempDir(), modelDir(t, 1)
			if _, err := Publish(context.Background(), dir, opts(repo, "v1", k)); err != nil {
				t.Fatal(err)
			}
			dir2 := modelDir(t, 2)
			cmd := exec.Command(os.Args[0], "-test.run=^TestPublishChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+repo+"|"+dir2+"|v2", crashpoint.EnvVar+"="+point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL || !strings.Contains(string(out), "crashpoint "+point) {
				t.Fatalf("publish was not killed at %s: %v\n%s", point, err, out)
			}
			checkRepository(t, repo, map[string]string{"v1": dir, "v2": dir2})
			if _, err := Publish(context.Background(), dir2, opts(repo, "v3", k)); err != nil {
				t.Fatalf("publish after the kill: %v", err)
			}
			checkRepository(t, repo, map[string]string{"v1": dir, "v2": dir2, "v3": dir2})
		})
	}
}

// checkRepository checks every manifest of demo (dirs: the model directory of
// each version, to compare bytes; "" to check digests only) and the channel.
func checkRepository(t *testing.T, repo string, dirs map[string]string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(repo, "demo", "manifests"))
	for _, e := range entries {
		v, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			t.Errorf("stray file %s among the manifests", e.Name())
			continue
		}
		mustInstallable(t, repo, readManifest(t, repo, "demo", v), dirs[v])
	}
	ch, err := os.ReadFile(filepath.Join(repo, "demo", "channels", "stable.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := verify.OpenChannel(ch, verify.NewKeyring(testKey(t).Public()))
	if err != nil {
		t.Fatal(err)
	}
	mustInstallable(t, repo, readManifest(t, repo, "demo", c.Version), dirs[c.Version])
}
