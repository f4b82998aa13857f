package slots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Crash points of an install, in the order they are passed.
var (
	installIntentPoint = crashpoint.Declare("install.after-intent")
	installClearPoint  = crashpoint.Declare("install.after-clear")
	installFilePoint   = crashpoint.Declare("install.after-first-file")
	installRenamePre   = crashpoint.Declare("install.before-rename")
	installRenamePost  = crashpoint.Declare("install.after-rename")
)

// ManifestFile is where a slot keeps the manifest it was verified against.
const ManifestFile = verify.MetaDir + "/manifest.json"

// Fill is an install in progress into the inactive slot: files are written under
// a temp directory and published by Commit, which verifies every file first. It
// is the containerd "ingest → commit | abort" shape. WriteFile and CreateFile
// may be called from several goroutines for different files.
type Fill struct {
	s    *Store
	slot string
	m    *verify.Manifest
	dir  string
	root *durable.Root // dir, opened once: every file is made and reopened beneath it, never through a link

	mu      sync.Mutex
	written map[string]bool // verified while writing
	created map[string]bool // handed out by CreateFile; verified at Commit
	adopted map[string]bool // verified chunk by chunk by the caller (AdoptVerified)
	meta    map[string][]byte
	metaSrc map[string]func() (*os.File, error) // name → opens a file copied in at Commit (AddMetaFile)
	prev    *verify.Manifest                    // the slot's previous version, kept aside (Previous)
	first   sync.Once
}

// BeginInstall marks the inactive slot as installing (saved before anything is
// touched), clears it and returns a Fill for m. It refuses while a trial runs:
// the inactive slot is then the one a revert would go back to.
func (s *Store) BeginInstall(ctx context.Context, m *verify.Manifest) (*Fill, error) {
	if s.st.Trial != nil {
		return nil, fmt.Errorf("install %s: %w (slot %s, version %s); end it with mark-good or mark-bad first",
			m.Version, ErrTrialActive, s.st.Trial.Slot, s.st.Trial.Version)
	}
	if m.Model != s.cfg.Model {
		return nil, fmt.Errorf("install: %w: manifest is for model %q, not %q", verify.ErrRejected, m.Model, s.cfg.Model)
	}
	slot := s.Inactive()
	prev := s.previous(slot)
	err := s.update(func(st *State) {
		st.Slots[slot] = &SlotState{Status: Installing, Version: m.Version, Sequence: m.Sequence}
		if st.Previous == slot {
			st.Previous = "" // its version is about to be overwritten
		}
	})
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", m.Version, err)
	}
	installIntentPoint.Hit()
	if prev != nil && s.keepSlot(slot) != nil {
		prev = nil
	}
	if prev == nil {
		if err := s.clearSlot(slot); err != nil {
			return nil, fmt.Errorf("install %s: %w", m.Version, err)
		}
	}
	installClearPoint.Hit()
	f := &Fill{s: s, slot: slot, m: m, dir: s.fillDir(slot), prev: prev,
		written: map[string]bool{}, created: map[string]bool{}, adopted: map[string]bool{},
		meta: map[string][]byte{}, metaSrc: map[string]func() (*os.File, error){}}
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("install %s: %w", m.Version, err)
	}
	err = s.withRoot(func(r *durable.Root) (err error) {
		f.root, err = r.OpenDir(path.Join(slotsDir, "."+slot+".tmp"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", m.Version, f.abort(err))
	}
	return f, nil
}

// previous is the manifest of the version slot holds (installed, on trial,
// good or bad: each was verified at its install, and a reader hashes what it
// reuses), or nil.
func (s *Store) previous(slot string) *verify.Manifest {
	if ss := s.st.Slots[slot]; ss == nil || ss.Status == Empty || ss.Status == Installing {
		return nil
	}
	m, err := s.SlotManifest(slot)
	if err != nil {
		return nil
	}
	return m
}

// keepSlot is clearSlot that moves the slot's content aside (keptDir) instead
// of throwing it away, so its chunks can be reused until Commit or Abort.
func (s *Store) keepSlot(slot string) error {
	if err := s.removeTemps(slot); err != nil {
		return err
	}
	if err := os.Rename(s.SlotDir(slot), s.keptDir(slot)); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Join(s.cfg.Dir, slotsDir))
}

// Previous is the version the slot held before this install — its directory
// and the manifest it was verified against at its own install — kept aside
// (never served) until Commit, Abort or DropPrevious, so the install can reuse
// its bytes. It is ("", nil) when the slot held none. Its files are as trusted
// as the active slot's: a reader hashes what it reuses.
func (f *Fill) Previous() (string, *verify.Manifest) {
	if f.prev == nil {
		return "", nil
	}
	return f.s.keptDir(f.slot), f.prev
}

// DropPrevious frees the previous version's space now (for an install that
// does not reuse it, or a disk that cannot hold both).
func (f *Fill) DropPrevious() error {
	f.prev = nil
	if err := f.s.removeAll(f.s.keptDir(f.slot)); err != nil {
		return fmt.Errorf("remove the slot's previous version: %w", err)
	}
	return nil
}

// Slot is the slot being filled.
func (f *Fill) Slot() string { return f.slot }

// Dir is the temp directory being filled.
func (f *Fill) Dir() string { return f.dir }

// WriteFile writes file vf from r, hashing as it writes. At most vf.Size+1 bytes
// are read, so an endless or oversized source stops at its declared size. A size
// or digest mismatch removes the file and returns a *verify.MismatchError.
func (f *Fill) WriteFile(ctx context.Context, vf verify.File, r io.Reader) error {
	out, err := f.create(vf)
	if err != nil {
		return err
	}
	h := verify.NewHash()
	n, err := verify.CopyBuffer(ctx, io.MultiWriter(out, h), io.LimitReader(r, vf.Size+1))
	if err == nil {
		err = checkWritten(vf, n, verify.HexDigest(h.Sum(nil)))
	}
	if err == nil {
		err = sealFile(out, vf)
	}
	out.Close()
	if err != nil {
		f.root.RemoveAll(vf.Path) // beneath the fill: never through a link
		return fmt.Errorf("install %s: %w", vf.Path, err)
	}
	f.mu.Lock()
	f.written[vf.Path] = true
	f.mu.Unlock()
	f.first.Do(installFilePoint.Hit)
	return nil
}

// Adopt moves the finished file rel under from (the caller's, on the same
// filesystem) into the fill as vf: renamed with both names resolved beneath
// their directories, never through a link. Commit verifies it like a file
// from CreateFile.
func (f *Fill) Adopt(vf verify.File, from *durable.Root, rel string) error {
	if _, ok := f.m.Lookup(vf.Path); !ok {
		return fmt.Errorf("install: %w: %s is not in the manifest", verify.ErrRejected, vf.Path)
	}
	if err := f.root.MkdirAll(path.Dir(vf.Path), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", vf.Path, err)
	}
	if err := from.RenameTo(rel, f.root, vf.Path); err != nil {
		return fmt.Errorf("install %s: %w", vf.Path, err)
	}
	f.mu.Lock()
	f.created[vf.Path] = true
	f.mu.Unlock()
	return nil
}

// AdoptVerified is Adopt without the hash at Commit. It is for one caller
// and one condition: a schema-2 install whose every byte of vf was hashed as
// it was written, chunk by chunk, against the chunk index that the signed
// manifest pins by digest (so the index pins each chunk, and the chunks,
// adding up to vf.Size, are the file). Commit still reopens it beneath the
// fill (a link or FIFO in its place is refused), checks it is a regular file
// of vf.Size bytes, sets its mode and syncs it; `modelslot verify` still
// hashes whole files. Anything not verified that way goes through WriteFile,
// CreateFile or Adopt. A rename across filesystems fails (the caller copies
// through CreateFile).
func (f *Fill) AdoptVerified(vf verify.File, from *durable.Root, rel string) error {
	if f.m.Index == nil {
		return fmt.Errorf("install: %w: %s cannot be adopted unhashed: the manifest pins no chunk index", verify.ErrRejected, vf.Path)
	}
	if err := f.Adopt(vf, from, rel); err != nil {
		return err
	}
	f.mu.Lock()
	f.adopted[vf.Path] = true
	f.mu.Unlock()
	f.first.Do(installFilePoint.Hit)
	return nil
}

// CreateFile creates vf's file for a caller that fills it by other means (say,
// reflinked ranges); Commit verifies it. The caller closes it.
func (f *Fill) CreateFile(vf verify.File) (*os.File, error) {
	out, err := f.create(vf)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.created[vf.Path] = true
	f.mu.Unlock()
	return out, nil
}

// AddMeta stores data as name under the slot's .modelslot directory (the
// manifest's signed envelope, for instance).
func (f *Fill) AddMeta(name string, data []byte) { f.meta[name] = data }

// AddMetaFile is AddMeta for a file too large to hold in memory (a chunk
// index): the file open returns is copied to the slot's .modelslot/name at
// Commit, so it must stay until then. open resolves it as the caller's files
// are (staging's beneath the staging directory, never through a link).
func (f *Fill) AddMetaFile(name string, open func() (*os.File, error)) { f.metaSrc[name] = open }

func (f *Fill) create(vf verify.File) (*os.File, error) {
	if _, ok := f.m.Lookup(vf.Path); !ok {
		return nil, fmt.Errorf("install: %w: %s is not in the manifest", verify.ErrRejected, vf.Path)
	}
	if err := f.root.MkdirAll(path.Dir(vf.Path), 0o755); err != nil {
		return nil, fmt.Errorf("install %s: %w", vf.Path, err)
	}
	out, err := f.root.Create(vf.Path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", vf.Path, err)
	}
	return out, nil
}

func checkWritten(vf verify.File, n int64, sum string) error {
	if n != vf.Size {
		return &verify.MismatchError{Path: vf.Path, Reason: fmt.Sprintf("got %d bytes or more, manifest says %d", n, vf.Size)}
	}
	if sum != vf.SHA256 {
		return &verify.MismatchError{Path: vf.Path, Reason: fmt.Sprintf("sha256 %s, manifest says %s", sum, vf.SHA256)}
	}
	return nil
}

// sealFile makes a verified file durable and read-only.
func sealFile(out *os.File, vf verify.File) error {
	if err := out.Chmod(os.FileMode(vf.Mode).Perm() &^ 0o222); err != nil {
		return err
	}
	return durable.Sync(out)
}

// Commit verifies what was not verified while written, stores the manifest in
// the slot, makes the tree durable and renames it into place, then records the
// slot as installed. Commit always ends the Fill: on error the temp directory is
// removed and the slot is empty again.
func (f *Fill) Commit(ctx context.Context) error {
	defer f.root.Close()
	if err := f.commit(ctx); err != nil {
		return fmt.Errorf("install %s: %w", f.m.Version, f.abort(err))
	}
	return nil
}

func (f *Fill) commit(ctx context.Context) error {
	if err := f.verifyRest(ctx); err != nil {
		return err
	}
	manifest, err := f.writeMeta()
	if err != nil {
		return err
	}
	if err := syncTree(f.dir); err != nil {
		return err
	}
	installRenamePre.Hit()
	if err := ctx.Err(); err != nil {
		return err // the last moment to stop: after the rename the slot is installed
	}
	if err := durable.Rename(f.dir, f.s.SlotDir(f.slot)); err != nil {
		return err
	}
	installRenamePost.Hit()
	err = f.s.update(func(st *State) {
		st.Slots[f.slot] = &SlotState{Status: Installed, Version: f.m.Version, Sequence: f.m.Sequence,
			ManifestSHA256: manifest, InstalledAt: time.Now().UTC()}
	})
	if err == nil && f.prev != nil {
		// Past the point of no return: a failure to free the old copy is not
		// the install's; the next open's recovery removes it.
		if derr := f.DropPrevious(); derr != nil {
			slog.Warn("could not remove the slot's previous version; it is removed at the next start", "err", derr)
		}
	}
	return err
}

// verifyRest checks that every file exists and hashes the ones that were not
// verified as they were written.
func (f *Fill) verifyRest(ctx context.Context) error {
	for _, vf := range f.m.Files {
		if f.written[vf.Path] {
			continue
		}
		if !f.created[vf.Path] {
			return &verify.MismatchError{Path: vf.Path, Reason: "never written"}
		}
		if err := f.verifyCreated(ctx, vf); err != nil {
			return err
		}
	}
	return nil
}

// verifyCreated hashes a file that was filled by other means, reopened
// beneath the fill's directory: a link or a FIFO put in its place is
// refused, not followed (a link to an outside copy with the right bytes
// would otherwise pass), then seals it.
func (f *Fill) verifyCreated(ctx context.Context, vf verify.File) error {
	in, err := f.root.OpenRegular(vf.Path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &verify.MismatchError{Path: vf.Path, Reason: "never written"}
		}
		return err
	}
	defer in.Close()
	if f.adopted[vf.Path] {
		return checkAdopted(in, vf)
	}
	sum, n, err := verify.HashReader(ctx, io.LimitReader(in, vf.Size+1))
	if err != nil {
		return fmt.Errorf("verify %s: %w", vf.Path, err)
	}
	if err := checkWritten(vf, n, sum); err != nil {
		return err
	}
	return sealFile(in, vf)
}

// checkAdopted checks an adopted file's size (its bytes were hashed chunk by
// chunk as they were written: AdoptVerified) and seals it.
func checkAdopted(in *os.File, vf verify.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != vf.Size {
		return &verify.MismatchError{Path: vf.Path, Reason: fmt.Sprintf("%d bytes, manifest says %d", fi.Size(), vf.Size)}
	}
	return sealFile(in, vf)
}

// writeMeta stores the manifest (and any extra metadata) and returns the
// manifest's sha256, which state.json records to detect a changed manifest.
func (f *Fill) writeMeta() (string, error) {
	data, err := f.m.Marshal()
	if err != nil {
		return "", err
	}
	if err := f.root.MkdirAll(verify.MetaDir, 0o755); err != nil {
		return "", err
	}
	f.meta[path.Base(ManifestFile)] = data
	for name, b := range f.meta {
		if err := f.writeMetaFile(path.Join(verify.MetaDir, name), b); err != nil {
			return "", err
		}
	}
	for name, src := range f.metaSrc {
		if err := f.copyMetaFile(path.Join(verify.MetaDir, name), src); err != nil {
			return "", err
		}
	}
	h := verify.NewHash()
	h.Write(data)
	return verify.HexDigest(h.Sum(nil)), nil
}

// writeMetaFile writes one file of the fill's .modelslot directory, made
// beneath it like every other file (the directory is new: no temp name is
// needed, the whole tree is renamed into place at the end).
func (f *Fill) writeMetaFile(rel string, data []byte) error {
	out, err := f.root.Create(rel, 0o444)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	if err == nil {
		err = durable.Sync(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyMetaFile is writeMetaFile from the file src opens.
func (f *Fill) copyMetaFile(rel string, src func() (*os.File, error)) error {
	in, err := src()
	if err != nil {
		return fmt.Errorf("slot metadata %s: %w", rel, err)
	}
	defer in.Close()
	out, err := f.root.Create(rel, 0o444)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = durable.Sync(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("slot metadata %s: %w", rel, err)
	}
	return nil
}

// Abort throws the Fill away and marks the slot empty.
func (f *Fill) Abort() error {
	defer f.root.Close()
	return f.abort(nil)
}

func (f *Fill) abort(cause error) error {
	err := f.s.clearSlot(f.slot)
	if err == nil {
		err = f.s.update(func(st *State) { st.Slots[f.slot] = &SlotState{Status: Empty} })
	}
	if cause != nil {
		return cause // the cause matters more than a failed clean-up, which recovery redoes
	}
	return err
}

// Manifest is the manifest being installed.
func (f *Fill) Manifest() *verify.Manifest { return f.m }
