package update

import (
	"context"
	"os"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/slots"
)

// DirSource copies a model from a plain directory (install --insecure). Files are
// verified against the manifest as they are written, so a file that changes
// between the scan and the copy is caught.
type DirSource struct{ Dir string }

// FirstStep: a local copy installs at once.
func (DirSource) FirstStep() string { return report.StatusInstalling }

// Fill copies every file of the fill's manifest.
func (d DirSource) Fill(ctx context.Context, fill *slots.Fill) error {
	for _, f := range fill.Manifest().Files {
		if err := d.copy(ctx, fill, f.Path); err != nil {
			return err
		}
	}
	return nil
}

func (d DirSource) copy(ctx context.Context, fill *slots.Fill, p string) error {
	in, err := os.Open(filepath.Join(d.Dir, filepath.FromSlash(p)))
	if err != nil {
		return err
	}
	defer in.Close()
	f, _ := fill.Manifest().Lookup(p)
	return fill.WriteFile(ctx, f, in)
}
