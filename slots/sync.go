package slots

import (
	"io/fs"
	"path/filepath"

	"github.com/modelslot/modelslot/internal/durable"
)

// syncTree fsyncs every directory under root, deepest first, so that each new
// entry is durable before the tree is renamed into place.
func syncTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := durable.SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}
