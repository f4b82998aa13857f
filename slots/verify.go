package slots

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/modelslot/modelslot/verify"
)

// SlotManifest reads the manifest stored in slot name and checks it against the
// digest recorded in state.json when the slot was installed, so a manifest edited
// in place is caught before its file list is trusted.
func (s *Store) SlotManifest(name string) (*verify.Manifest, error) {
	ss := s.st.Slots[name]
	if ss.Status == Empty || ss.Status == Installing {
		return nil, fmt.Errorf("slot %s is %s: it holds no model", name, ss.Status)
	}
	data, err := s.readFile(path.Join(slotsDir, name, ManifestFile), verify.MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("slot %s: %w", name, &verify.MismatchError{Path: ManifestFile, Reason: "missing"})
	}
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", name, err)
	}
	h := verify.NewHash()
	h.Write(data)
	if sum := verify.HexDigest(h.Sum(nil)); sum != ss.ManifestSHA256 {
		return nil, fmt.Errorf("slot %s: %w", name, &verify.MismatchError{Path: ManifestFile,
			Reason: fmt.Sprintf("changed since install: sha256 %s, state.json says %s", sum, ss.ManifestSHA256)})
	}
	m, err := verify.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %s: %w", name, ManifestFile, err)
	}
	return m, nil
}

// VerifySlot re-hashes every file of slot name against its manifest on up to
// workers goroutines and returns the manifest. Any difference — a changed,
// missing or extra file — is a *verify.MismatchError naming the file.
func (s *Store) VerifySlot(ctx context.Context, name string, workers int) (*verify.Manifest, error) {
	m, err := s.SlotManifest(name)
	if err != nil {
		return nil, err
	}
	// The slot itself must be a real directory: through a link to a copy, each
	// listed file would check out while the copy's extra files went unseen.
	if err := s.checkEntry(path.Join(slotsDir, name), true); err != nil {
		return m, fmt.Errorf("slot %s (%s): %w", name, m.Version, err)
	}
	if err := verify.VerifyTree(ctx, s.SlotDir(name), m, workers); err != nil {
		return m, fmt.Errorf("slot %s (%s): %w", name, m.Version, err)
	}
	return m, nil
}
