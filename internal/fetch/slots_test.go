package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/update"
	"github.com/modelslot/modelslot/slots"
	"github.com/modelslot/modelslot/verify"
)

// The slot store's Fill is what Assemble is written for.
var _ Fill = (*slots.Fill)(nil)

// storeInstall runs the device path into the real slot store: the Source the
// command line and the agent use, through the updater (no health to confirm).
func storeInstall(t *testing.T, s *slots.Store, r *repo) (*Plan, error) {
	t.Helper()
	ctx := context.Background()
	src, err := OpenSource(ctx, r.channelURL(), s, SourceOptions{Trusted: r.trusted(), Client: fastOptions})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var plan *Plan
	src.planned = func(p *Plan) { plan = p }
	_, err = (&update.Updater{Store: s, Workers: 2}).Install(ctx, src.Manifest, src)
	return plan, err
}

func TestSlotStoreInstallAndDeltaUpdate(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := storeInstall(t, s, r); err != nil {
		t.Fatal(err)
	}
	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[100<<10:], "changed")
	writeFile(t, dir, "weights.bin", w)
	r.publish(dir, "v2")
	p, err := storeInstall(t, s, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.ReusedSize == 0 || len(p.Fetch) > 2 {
		t.Fatalf("delta update: %s", p.Summary())
	}
	m, err := s.VerifySlot(context.Background(), s.State().Active, 1)
	if err != nil || m.Version != "v2" {
		t.Fatalf("active slot after the update: %v, %v", m, err)
	}
}

func TestSlotStoreFailedDownloadLeavesActiveSlotUntouched(t *testing.T) {
	r := newRepo(t)
	dir := model(t, 1)
	r.publish(dir, "v1")
	s, err := slots.Open(context.Background(), slots.Config{Dir: t.TempDir(), Model: "demo"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := storeInstall(t, s, r); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "weights.bin", randomBytes(300<<10, 9))
	res := r.publish(dir, "v2")
	f, _ := res.Manifest.Lookup("weights.bin")
	// The last chunk: with 4 workers, it is handed out only after the first
	// few finished, so some verified chunks exist when it fails.
	name := r.chunkFile(f.Chunks[len(f.Chunks)-1].SHA256)
	b, _ := os.ReadFile(name)
	b[len(b)/2] ^= 1
	os.WriteFile(name, b, 0o644)
	_, err = storeInstall(t, s, r)
	if !errors.Is(err, ErrDownload) || !errors.Is(err, ErrCorrupt) || errors.Is(err, verify.ErrRejected) {
		t.Fatalf("install of a chunk that stays corrupt = %v, want a download failure (not a rejection)", err)
	}
	if m, err := s.VerifySlot(context.Background(), s.State().Active, 1); err != nil || m.Version != "v1" {
		t.Fatalf("active slot after the failed install: %v, %v", m, err)
	}
	// Staging is resumable: what verified is kept for the next attempt.
	st, _ := OpenStaging(s.StagingPath())
	p, _ := NewPlan(context.Background(), res.Manifest, st, nil)
	if p.StagedSize == 0 {
		t.Fatal("verified chunks of the failed attempt were not kept")
	}
}
