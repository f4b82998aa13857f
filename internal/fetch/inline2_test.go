package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// inlineCase publishes a safetensors-like model and a config.json into a
// repository whose manifests carry small files inline, installs v1, changes
// only config.json and publishes v2. It returns the repository (log reset)
// and the active v1 slot.
func inlineCase(t *testing.T, config1, config2 []byte) (*repo2, *Active) {
	t.Helper()
	r := newRepo2(t)
	r.inline = true
	dir := t.TempDir()
	writeFile(t, dir, "model.safetensors", randomBytes(1<<20, 1))
	writeFile(t, dir, "config.json", config1)
	m1 := r.publish2(dir, "v1")
	out1, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "config.json", config2)
	r.publish2(dir, "v2")
	r.resetLog()
	return r, r.asSlot(t, out1, m1)
}

// requested is what the server saw since the last resetLog: path → requests.
func (r *repo) requested() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for p, n := range r.hits {
		out[p] = n
	}
	return out
}

func wantRequests(t *testing.T, r *repo, want map[string]int) {
	t.Helper()
	got := r.requested()
	if len(got) != len(want) {
		t.Fatalf("the server saw %v, want exactly %v", got, want)
	}
	for p, n := range want {
		if got[p] != n {
			t.Fatalf("the server saw %v, want exactly %v", got, want)
		}
	}
}

func wantFile(t *testing.T, dir, name string, want []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || string(b) != string(want) {
		t.Fatalf("%s holds %q (%v), want %q", name, b, err, want)
	}
}

var (
	channelPath = "/demo/" + verify.ChannelPath("stable")
	v2Path      = "/demo/" + verify.ManifestPath("v2")
)

// A config-only change whose config is inline in the signed manifest costs
// the channel pointer and the manifest: no index section (derived), no
// locations and no pack range, and the slot holds v2's config.
func TestFormat2InlineConfigChangeIsChannelAndManifestOnly(t *testing.T) {
	v2 := []byte(`{"layers": 4, "heads": 16}`)
	r, active := inlineCase(t, []byte(`{"layers": 4, "heads": 8}`), v2)
	out, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wantRequests(t, r.repo, map[string]int{channelPath: 1, v2Path: 1})
	wantFile(t, out, "config.json", v2)
	if p.FetchChunks != 0 || p.FetchRequests != 0 || p.InlineSize != int64(len(v2)) {
		t.Fatalf("plan: %s; want nothing fetched and the config's %d bytes from the manifest", p.Summary(), len(v2))
	}
}

// A small changed file above InlineMax, cut into one chunk, has its index
// section derived from the manifest (no index request), but its chunk is
// fetched: the locations, then one pack range.
func TestFormat2OneChunkFileSectionIsDerivedButItsChunkFetched(t *testing.T) {
	v2 := randomBytes(5<<10, 22)
	r, active := inlineCase(t, randomBytes(5<<10, 21), v2)
	out, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got := r.requested()
	if len(r.idx) != 0 || len(r.loc) != 1 || len(r.packRequests()) != 1 || got[channelPath] != 1 || got[v2Path] != 1 || len(got) != 4 {
		t.Fatalf("the server saw %v (index %q, locations %q, packs %q); want the channel, the manifest, the locations and one pack range",
			got, r.idx, r.loc, r.packRequests())
	}
	wantFile(t, out, "config.json", v2)
	if p.FetchChunks != 1 || p.InlineSize != 0 {
		t.Fatalf("plan: %s; want the config's one chunk fetched", p.Summary())
	}
}

// A bundle of a version with inline files installs them right (their
// frames in the pack are skipped, the bytes come from the manifest).
func TestFormat2BundleWithInlineFilesInstalls(t *testing.T) {
	r := newRepo2(t)
	r.inline = true
	dir := bigModel(t, 1, 512<<10)
	writeFile(t, dir, "config.json", []byte(`{"layers": 4}`))
	m := r.publish2(dir, "v1")
	if f, _ := m.Lookup("config.json"); f.Data == "" {
		t.Fatal("test setup: config.json is not inline")
	}
	s := openStore(t)
	p, err := storeInstallFrom(t, s, bundle2(t, r, m, nil), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	if p.InlineSize == 0 {
		t.Fatalf("no bytes came from the manifest: %s", p.Summary())
	}
	if got, err := s.VerifySlot(context.Background(), s.State().Active, 1); err != nil || got.Version != "v1" {
		t.Fatalf("active slot after the bundle install: %v, %v", got, err)
	}
	wantFile(t, s.SlotDir(s.State().Active), "config.json", []byte(`{"layers": 4}`))
}

// An install killed (SIGKILL, a real process) during assembly, after the
// inline config was staged and moved into the fill and before the weights
// were, resumes with the channel and the manifest only: the weights' chunks
// are staged and re-verified, the config comes from the manifest again,
// and no index, locations or pack byte is asked for.
func TestFormat2KilledAfterInlineFileStagedResumesWithoutFetching(t *testing.T) {
	if url := os.Getenv("FETCH_INLINE_CHILD_URL"); url != "" {
		inlineChild(t, url, os.Getenv("FETCH_INLINE_CHILD_STAGING"))
		return
	}
	r := newRepo2(t)
	r.inline = true
	dir := t.TempDir()
	writeFile(t, dir, "model.safetensors", randomBytes(1<<20, 1))
	writeFile(t, dir, "config.json", []byte(`{"layers": 4}`))
	m := r.publish2(dir, "v1")
	staging := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestFormat2KilledAfterInlineFileStagedResumesWithoutFetching$")
	child.Env = append(os.Environ(), "FETCH_INLINE_CHILD_URL="+r.channelURL(), "FETCH_INLINE_CHILD_STAGING="+staging)
	out, err := child.CombinedOutput()
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed where it should be (%v):\n%s", err, out)
	}
	r.resetLog()
	got, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, staging)
	if err != nil {
		t.Fatal(err)
	}
	wantRequests(t, r.repo, map[string]int{channelPath: 1, "/demo/" + verify.ManifestPath("v1"): 1})
	weights, _ := m.Lookup("model.safetensors")
	if p.FetchChunks != 0 || p.StagedSize != weights.Size || p.InlineSize != int64(len(`{"layers": 4}`)) {
		t.Fatalf("resumed plan: %s; want the weights staged and the config inline", p.Summary())
	}
	wantFile(t, got, "config.json", []byte(`{"layers": 4}`))
}

// inlineChild installs into a fill that kills the process when the weights
// are moved in: config.json, first in the manifest, is in by then.
func inlineChild(t *testing.T, url, staging string) {
	ctx := context.Background()
	c := fastClient()
	res, err := c.Resolve(ctx, url, verify.NewKeyring(testKeyNoT(1).Public()))
	if err != nil {
		os.Exit(2)
	}
	st, err := OpenStaging(staging)
	if err != nil {
		os.Exit(2)
	}
	src := &Source{}
	src.resolvedBy(c, res)
	fill := &killFill{dirFill: &dirFill{dir: t.TempDir()}, at: "model.safetensors"}
	src.fill(ctx, fill, st, nil, Space{StagingDir: st.Dir(), SlotDir: fill.dir})
	os.Exit(3) // not reached: killed in the fill
}

// killFill kills its process with SIGKILL when the file at is adopted.
type killFill struct {
	*dirFill
	at string
}

func (k *killFill) AdoptVerified(f verify.File, from *durable.Root, rel string) error {
	if f.Path == k.at {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return k.dirFill.AdoptVerified(f, from, rel)
}

// A signed manifest whose inline bytes match the file's sha256 but not the
// chunks its pinned index lists for it disagrees with itself: the install
// is rejected naming the file, and the active slot still verifies.
func TestFormat2InlineDataThatIsNotItsIndexChunkIsRejected(t *testing.T) {
	r, active := inlineCase(t, []byte(`{"layers": 4}`), []byte(`{"layers": 5}`))
	name := filepath.Join(r.dir, "demo", verify.ManifestPath("v2"))
	env, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := verify.OpenManifest(env, r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(`{"layers": 6}`) // same size, other bytes: the index lists the chunk of 5
	for i := range m.Files {
		if f := &m.Files[i]; f.Path == "config.json" {
			sum := sha256.Sum256(other)
			f.SHA256, f.Data = hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(other)
		}
	}
	signed, err := verify.SignManifest(m, r.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.dir, "demo/"+verify.ManifestPath("v2"), signed)
	r.pointChannel(m, signed)
	_, _, _, err = install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	wantErr(t, err, verify.ErrRejected, "config.json: its inline data is not chunk")
	if err := verify.VerifyTree(context.Background(), active.Dir, active.Manifest, 1); err != nil {
		t.Fatalf("the active slot no longer verifies: %v", err)
	}
}
