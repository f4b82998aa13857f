package fetch

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// bundle2 writes version v of a fresh repo2 (one version: one pack, in order
// of first use) as a format-2 bundle; edit may change the locations and pack.
func bundle2(t *testing.T, r *repo2, m *verify.Manifest, edit func(locs []chunkindex.Loc, pack []byte) []byte) string {
	env, _ := os.ReadFile(filepath.Join(r.dir, "demo", verify.ManifestPath(m.Version)))
	idx, _ := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(chunkindex.IndexPath(m.Index.SHA256))))
	packs, locs, sizes := r.locationsSized(m)
	if len(packs) != 1 {
		t.Fatalf("test setup: %d packs", len(packs))
	}
	pack, _ := os.ReadFile(r.packFile(packs[0]))
	if edit != nil {
		pack = edit(locs, pack)
	}
	var lb bytes.Buffer
	chunkindex.WriteLocations(&lb, []chunkindex.Digest{sha256.Sum256(pack)}, locs, sizes)
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range []struct {
		name string
		data []byte
	}{{bundle.EnvelopeName, env}, {bundle.IndexName, idx}, {bundle.LocationsName, lb.Bytes()}, {bundle.PackName, pack}} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
		tw.Write(e.data)
	}
	tw.Close()
	name := filepath.Join(t.TempDir(), "v"+bundle.Ext)
	writeFile(t, filepath.Dir(name), filepath.Base(name), out.Bytes())
	return name
}

// storeInstallFrom installs source (a URL or a bundle) into the slot store.
func storeInstallFrom(t *testing.T, s *slots.Store, source string, trusted verify.Keyring) (*Plan, error) {
	t.Helper()
	ctx := context.Background()
	src, err := OpenSource(ctx, source, s, SourceOptions{Trusted: trusted, Client: fastOptions})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var plan *Plan
	src.planned = func(p *Plan) { plan = p }
	_, err = (&update.Updater{Store: s, Workers: 2}).Install(ctx, src.Manifest, src)
	return plan, err
}

func openStore(t *testing.T) *slots.Store {
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFormat2BundleInstallsIntoTheSlotStore(t *testing.T) {
	r := newRepo2(t)
	dir := bigModel(t, 1, 512<<10)
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	writeFile(t, dir, "copy.bin", w) // every chunk used twice: later uses point back
	m := r.publish2(dir, "v1")
	s := openStore(t)
	p, err := storeInstallFrom(t, s, bundle2(t, r, m, nil), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	if p.CopiedSize != int64(len(w)) {
		t.Fatalf("the repeated file was not copied from its first use: %s", p.Summary())
	}
	got, err := s.VerifySlot(context.Background(), s.State().Active, 1)
	if err != nil || got.Version != "v1" {
		t.Fatalf("active slot after the bundle install: %v, %v", got, err)
	}
	// The slot keeps the index, so the next install can reuse by it.
	meta := workIn(t, filepath.Join(s.SlotDir(s.State().Active), verify.MetaDir))
	if err := checkIndexFile(meta, IndexFile, m.Index); err != nil {
		t.Fatal(err)
	}
}

func TestFormat2BundlePackNotInFirstUseOrderIsRejected(t *testing.T) {
	r := newRepo2(t)
	m := r.publish2(bigModel(t, 1, 512<<10), "v1")
	// Swap the first two frames, and their locations with them: every
	// chunk is still where the locations say, but the stream no longer
	// follows the index, so a pipe could not be read in one pass.
	name := bundle2(t, r, m, func(locs []chunkindex.Loc, pack []byte) []byte {
		a, b := locs[0], locs[1]
		out := append(append(append([]byte{}, pack[b.Offset:b.Offset+uint64(b.CSize)]...), pack[a.Offset:a.Offset+uint64(a.CSize)]...), pack[b.Offset+uint64(b.CSize):]...)
		locs[1].Offset, locs[0].Offset = 0, uint64(b.CSize)
		return out
	})
	s := openStore(t)
	_, err := storeInstallFrom(t, s, name, r.trusted())
	wantErr(t, err, verify.ErrRejected, "not in order of first use")
	if errors.Is(err, ErrDownload) {
		t.Fatalf("a broken bundle is not a download failure: %v", err)
	}
}

// A serving v2, B holding v1: installing v1' goes into B and reuses what B
// held before it was cleared (slots.Fill.Previous), not only the active slot.
func TestFormat2StoreReusesTheSlotBeingRefilled(t *testing.T) {
	r := newRepo2(t)
	dir := bigModel(t, 1, 1<<20)
	r.publish2(dir, "v1")
	s := openStore(t)
	if _, err := storeInstallFrom(t, s, r.channelURL(), r.trusted()); err != nil {
		t.Fatal(err)
	}
	r.publish2(bigModel(t, 50, 1<<20), "v2")
	if _, err := storeInstallFrom(t, s, r.channelURL(), r.trusted()); err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[300<<10:], "v1 prime")
	writeFile(t, dir, "weights.bin", w)
	r.publish2(dir, "v3")
	p, err := storeInstallFrom(t, s, r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	if p.FetchBytes > 200<<10 || p.ReusedSize < 1<<20 {
		t.Fatalf("v1' over the slot that held v1: %s", p.Summary())
	}
	if m, err := s.VerifySlot(context.Background(), s.State().Active, 1); err != nil || m.Version != "v3" {
		t.Fatalf("active slot: %v, %v", m, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.SlotDir(slots.A)), ".A.previous")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the previous version kept aside was not removed after the commit: %v", err)
	}
}

// A format-2 bundle on stdin (a pipe: no seeking) installs in one pass.
func TestFormat2BundleFromStdin(t *testing.T) {
	r := newRepo2(t)
	m := r.publish2(bigModel(t, 1, 512<<10), "v1")
	b, _ := os.ReadFile(bundle2(t, r, m, nil))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { pw.Write(b); pw.Close() }()
	s := openStore(t)
	ctx := context.Background()
	src, err := OpenSource(ctx, "-", s, SourceOptions{Trusted: r.trusted(), Stdin: pr})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := (&update.Updater{Store: s, Workers: 2}).Install(ctx, src.Manifest, src); err != nil {
		t.Fatal(err)
	}
	if got, err := s.VerifySlot(ctx, s.State().Active, 1); err != nil || got.Version != "v1" {
		t.Fatalf("active slot after a bundle from stdin: %v, %v", got, err)
	}
}
