package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

// addFile cuts one file into chunks (with its format's forced cuts) and hands
// them to the store in order. The file is hashed again as it is read: if it
// differs from what Scan saw, it changed while publishing and the manifest
// would lie.
func (s *store) addFile(ctx context.Context, name string, f *verify.File, p chunker.Params) error {
	s.beginFile()
	in, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("chunk %s: %w", f.Path, err)
	}
	defer in.Close()
	whole := verify.NewHash()
	c, err := chunker.New(io.TeeReader(in, whole), p)
	if err != nil {
		return err
	}
	c.ForceCuts(tensorCuts(name))
	for {
		data, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = s.add(data)
		}
		if err != nil {
			return fmt.Errorf("chunk %s: %w", f.Path, err)
		}
	}
	if got := verify.HexDigest(whole.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("chunk %s: the file changed while it was published (sha256 %s, then %s); publish again when it is stable",
			f.Path, f.SHA256, got)
	}
	return nil
}
