package fetch

import (
	"bytes"
	"context"
	"testing"

	"github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/verify"
)

func makeBundle(t *testing.T, k *verify.PrivateKey) []byte {
	t.Helper()
	return bundle1(t, model(t, 1), k)
}

// installBundle is the device path for a bundle: verify, plan, ingest, assemble.
func installBundle(t *testing.T, b []byte, k *verify.PrivateKey, staging string) (*Plan, error) {
	ctx := context.Background()
	br, err := bundle.NewReader(bytes.NewReader(b), verify.NewKeyring(k.Public()))
	if err != nil {
		return nil, err
	}
	st, _ := OpenStaging(staging)
	p, err := NewPlan(ctx, br.Manifest, st, nil)
	if err != nil {
		return nil, err
	}
	if err := Ingest(ctx, br, p, nil); err != nil {
		return p, err
	}
	out := t.TempDir()
	if err := Assemble(ctx, p, &dirFill{dir: out}); err != nil {
		return p, err
	}
	return p, verify.VerifyTree(ctx, out, br.Manifest, 1)
}

func TestInstallFromBundle(t *testing.T) {
	k := testKey(t, 1)
	if _, err := installBundle(t, makeBundle(t, k), k, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestHostileBundleTruncatedKeepsWhatWasVerified(t *testing.T) {
	k := testKey(t, 1)
	b := makeBundle(t, k)
	staging := t.TempDir()
	_, err := installBundle(t, b[:len(b)*2/3], k, staging)
	wantErr(t, err, verify.ErrRejected, "bundle truncated")
	// Copied again in full, the install resumes from what was verified.
	p, err := installBundle(t, b, k, staging)
	if err != nil {
		t.Fatal(err)
	}
	if p.StagedSize == 0 {
		t.Fatal("the chunks read before the truncation were not kept")
	}
}
