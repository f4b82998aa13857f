package publish

import (
	"bytes"
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
// would lie. For a file small enough to be inline (verify.InlineMax) it
// returns the bytes it chunked, checked by that same hash, else nil.
func (s *store) addFile(ctx context.Context, name string, f *verify.File, p chunker.Params) ([]byte, error) {
	s.beginFile()
	in, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", f.Path, err)
	}
	defer in.Close()
	whole := verify.NewHash()
	var small *bytes.Buffer
	var sink io.Writer = whole
	if f.Size <= verify.InlineMax {
		small = &bytes.Buffer{}
		sink = io.MultiWriter(whole, small)
	}
	c, err := chunker.New(io.TeeReader(in, sink), p)
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("chunk %s: %w", f.Path, err)
		}
	}
	if got := verify.HexDigest(whole.Sum(nil)); got != f.SHA256 {
		return nil, fmt.Errorf("chunk %s: the file changed while it was published (sha256 %s, then %s); publish again when it is stable",
			f.Path, f.SHA256, got)
	}
	if small == nil || int64(small.Len()) != f.Size {
		return nil, nil
	}
	return small.Bytes(), nil
}
