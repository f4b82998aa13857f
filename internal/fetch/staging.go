package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

// Staging keeps verified, uncompressed chunks between attempts of an install
// (<state>/<model>/staging/chunks/<sha256>), so an install interrupted by a
// dropped connection, a restart or a power cut resumes without fetching a
// verified chunk twice. It is a cache of our own making: a chunk that no longer
// matches its name is deleted, never used.
type Staging struct {
	dir string
}

const tmpPrefix = ".tmp-"

// OpenStaging opens (creating it if needed) the staging store at dir and removes
// the temp files an interrupted write left; they were never renamed, so they
// were never trusted.
func OpenStaging(dir string) (*Staging, error) {
	s := &Staging{dir: dir}
	if err := os.MkdirAll(s.chunkDir(), 0o755); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	entries, err := os.ReadDir(s.chunkDir())
	if err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(s.chunkDir(), e.Name()))
		}
	}
	return s, nil
}

// Dir is the staging directory.
func (s *Staging) Dir() string { return s.dir }

func (s *Staging) chunkDir() string       { return filepath.Join(s.dir, "chunks") }
func (s *Staging) path(sum string) string { return filepath.Join(s.chunkDir(), sum) }

// Put stores a verified chunk: temp, fsync, rename, so after a power cut the
// name holds the whole chunk or does not exist. The directory is not synced per
// chunk: a name lost in a power cut costs one download again, not a wrong byte
// (Has re-hashes whatever it finds).
func (s *Staging) Put(c verify.Chunk, data []byte) error {
	if err := checkSum(data, c); err != nil {
		return err // callers verify first; this guards the invariant, not the network
	}
	f, err := os.CreateTemp(s.chunkDir(), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	_, err = f.Write(data)
	if err == nil {
		err = durable.Sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(c.SHA256))
	}
	if err != nil {
		return fmt.Errorf("staging: store chunk %s: %w", c.SHA256, err)
	}
	return nil
}

// Has reports whether a verified copy of c is staged. It re-hashes the file: a
// chunk kept across a restart is trusted only for what it is now. A staged
// file that does not match is removed.
func (s *Staging) Has(ctx context.Context, c verify.Chunk) (bool, error) {
	name := s.path(c.SHA256)
	fi, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("staging: %w", err)
	}
	if fi.Size() == c.Size && fi.Mode().IsRegular() {
		sum, _, err := verify.HashFile(ctx, name)
		if err != nil {
			return false, fmt.Errorf("staging: %w", err)
		}
		if sum == c.SHA256 {
			return true, nil
		}
	}
	slog.Warn("staged chunk does not match its name; removed, it will be downloaded again", "chunk", c.SHA256, "file", name)
	return false, os.Remove(name)
}

// Open opens a staged chunk for reading.
func (s *Staging) Open(sum string) (*os.File, error) {
	return os.Open(s.path(sum))
}

// Clear removes every staged chunk, after the install they served committed.
func (s *Staging) Clear() error {
	if err := os.RemoveAll(s.chunkDir()); err != nil {
		return fmt.Errorf("staging: clear: %w", err)
	}
	if err := os.MkdirAll(s.chunkDir(), 0o755); err != nil {
		return fmt.Errorf("staging: clear: %w", err)
	}
	return durable.SyncDir(s.dir)
}
