package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/testutil"
)

// repoFiles lists the repository's files (relative, slash-separated).
func repoFiles(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(repo, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	return out
}

// packsOf lists the pack files a version's locations name.
func packsOf(t *testing.T, repo string, r *Result) []string {
	t.Helper()
	var out []string
	eachLoc(t, repo, r.Manifest, func(packs []chunkindex.Digest, _ chunkindex.Loc) {
		if out == nil {
			for _, p := range packs {
				out = append(out, chunkindex.PackPath(p))
			}
		}
	})
	return out
}

func TestPruneKeepsTheNewestAndWhatAChannelPointsTo(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	dirs := []string{modelDir(t, 1), modelDir(t, 2), modelDir(t, 3), modelDir(t, 4)}
	var res []*Result
	for i, dir := range dirs {
		o := opts(repo, fmt.Sprintf("v%d", i+1), k)
		if i == 0 {
			o.Channel = "lts" // v1 stays pinned by its channel
		}
		r, err := Publish(context.Background(), dir, o)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	write(t, repo, "packs/.tmp-123.pack", []byte("left by a killed publish"))
	write(t, repo, "packs/README", []byte("not ours: left alone"))
	time.Sleep(10 * time.Millisecond) // prune leaves files newer than its start alone
	before := testutil.TreeHash(t, repo)
	dry, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.TreeHash(t, repo); got != before {
		t.Fatal("a dry run changed the repository")
	}
	if !slices.Equal(dry.Manifests, []string{"demo/manifests/v3.json", "demo/manifests/v2.json"}) {
		t.Fatalf("a dry run would remove %v, want v3 and v2 (v4 is the newest, v1 is lts's)", dry.Manifests)
	}
	done, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done.Files, dry.Files) || !slices.Equal(done.Manifests, dry.Manifests) {
		t.Fatalf("prune removed %v %v, its dry run listed %v %v", done.Manifests, done.Files, dry.Manifests, dry.Files)
	}
	mustInstallable(t, repo, res[0].Manifest, dirs[0])
	mustInstallable(t, repo, res[3].Manifest, dirs[3])
	// What is left: exactly what v1 and v4 need, the channels, the lock and the stranger.
	want := []string{".modelslot-lock", "demo/" + ModelLockName, "demo/channels/lts.json", "demo/channels/stable.json",
		"demo/manifests/v1.json", "demo/manifests/v4.json", "packs/README"}
	for _, r := range []*Result{res[0], res[3]} {
		want = append(want, chunkindex.IndexPath(r.Manifest.Index.SHA256), chunkindex.LocationsPath(r.Manifest.Index.SHA256))
		for _, p := range packsOf(t, repo, r) {
			want = append(want, p, strings.TrimSuffix(p, ".pack")+".cat")
		}
	}
	slices.Sort(want)
	if got := repoFiles(t, repo); !slices.Equal(slices.Compact(want), got) {
		t.Fatalf("after prune the repository holds\n%v\nwant\n%v", got, want)
	}
}

func TestPruneRefusesWhatItCannotRead(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	for i := range 2 {
		if _, err := Publish(context.Background(), modelDir(t, uint64(i)), opts(repo, fmt.Sprintf("v%d", i+1), k)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, repo, "demo/manifests/broken.json", []byte("{"))
	before := testutil.TreeHash(t, repo)
	if _, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1}); err == nil || !strings.Contains(err.Error(), "cannot tell") {
		t.Fatalf("prune with an unreadable manifest = %v, want a refusal", err)
	}
	if testutil.TreeHash(t, repo) != before {
		t.Fatal("a refused prune removed files")
	}
	if _, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 0}); err == nil {
		t.Fatal("prune --keep 0 was accepted")
	}
}

// TestPruneWaitsForARunningPublish: v3 of a model goes back to v1's content,
// so it references v1's packs; while it publishes, a prune that keeps one
// version would remove v1 and those packs (v2 is the newest it sees). The
// lock makes the prune wait; it then keeps v3 and what v3 needs.
func TestPruneWaitsForARunningPublish(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	a, b := modelDir(t, 1), modelDir(t, 2)
	for i, dir := range []string{a, b} {
		if _, err := Publish(context.Background(), dir, opts(repo, fmt.Sprintf("v%d", i+1), k)); err != nil {
			t.Fatal(err)
		}
	}
	loaded, release := make(chan struct{}), make(chan struct{})
	afterCatalogs = func() { close(loaded); <-release }
	defer func() { afterCatalogs = func() {} }()
	var v3 *Result
	var pubErr error
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		v3, pubErr = Publish(context.Background(), a, opts(repo, "v3", k))
	}()
	<-loaded
	pruneDone := make(chan error, 1)
	go func() {
		_, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1})
		pruneDone <- err
	}()
	select {
	case err := <-pruneDone:
		t.Fatalf("prune finished (%v) while a publish held the lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	<-pubDone
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	if err := <-pruneDone; err != nil {
		t.Fatal(err)
	}
	if v3.NewChunks != 0 {
		t.Fatalf("v3 wrote %d chunks: it should reuse all of v1's", v3.NewChunks)
	}
	mustInstallable(t, repo, v3.Manifest, a)
	if _, err := os.Stat(filepath.Join(repo, "demo/manifests/v1.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("v1's manifest: %v, want it pruned", err)
	}
}

// TestPruneDuringPublishesLeavesEveryKeptVersionInstallable runs publishes
// (versions alternating between three contents, so each reuses packs of a
// version that may be pruned) against repeated prunes, on real files; after
// each round every manifest left is fully installable.
func TestPruneDuringPublishesLeavesEveryKeptVersionInstallable(t *testing.T) {
	k, repo := testKey(t), t.TempDir()
	dirs := []string{modelDir(t, 1), modelDir(t, 2), modelDir(t, 3)}
	lockPoll = 5 * time.Millisecond
	defer func() { lockPoll = 50 * time.Millisecond }()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	pruneErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := Prune(context.Background(), PruneOptions{Repo: repo, Keep: 1}); err != nil {
				pruneErr <- err
				return
			}
		}
	}()
	versions := map[string]string{}
	for i := range 12 {
		v, dir := fmt.Sprintf("v%d", i+1), dirs[i%3]
		o := opts(repo, v, k)
		o.PackSize = 150 << 10
		if _, err := Publish(context.Background(), dir, o); err != nil {
			t.Fatalf("publish %s: %v", v, err)
		}
		versions[v] = dir
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-pruneErr:
		t.Fatal(err)
	default:
	}
	entries, _ := os.ReadDir(filepath.Join(repo, "demo", "manifests"))
	if len(entries) == 0 || len(entries) == 12 {
		t.Fatalf("%d manifests left of 12: the prunes did not run between the publishes", len(entries))
	}
	for _, e := range entries {
		v := strings.TrimSuffix(e.Name(), ".json")
		mustInstallable(t, repo, readManifest(t, repo, "demo", v), versions[v])
	}
	checkRepository(t, repo, versions)
}
