package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/verify"
)

// addFile cuts one file into chunks, stores them on s.workers goroutines and
// fills f.Chunks in order. At most 2×workers chunks are in memory at once. The
// file is hashed again as it is read: if it differs from what Scan saw, it
// changed while publishing and the manifest would lie.
func (s *store) addFile(ctx context.Context, name string, f *verify.File, p chunker.Params) error {
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
	f.Chunks, err = s.storeChunks(ctx, c)
	if err != nil {
		return fmt.Errorf("chunk %s: %w", f.Path, err)
	}
	if got := verify.HexDigest(whole.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("chunk %s: the file changed while it was published (sha256 %s, then %s); publish again when it is stable",
			f.Path, f.SHA256, got)
	}
	return nil
}

func (s *store) storeChunks(ctx context.Context, c *chunker.Chunker) ([]verify.Chunk, error) {
	var (
		chunks []verify.Chunk
		mu     sync.Mutex
		wg     sync.WaitGroup
		first  error
	)
	slots := make(chan struct{}, 2*s.workers)
	fail := func(err error) {
		mu.Lock()
		first = cmp(first, err)
		mu.Unlock()
	}
	for i := 0; ; i++ {
		data, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			fail(err)
			break
		}
		if failed(&mu, &first) {
			break // a worker failed: stop reading, the run is lost anyway
		}
		mu.Lock() // workers write into chunks; append may move it
		chunks = append(chunks, verify.Chunk{Size: int64(len(data))})
		mu.Unlock()
		buf := append([]byte(nil), data...) // the chunker reuses its buffer
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			sum := sha256.Sum256(buf)
			hexSum := hex.EncodeToString(sum[:])
			csize, err := s.put(hexSum, buf)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			chunks[i].SHA256, chunks[i].CSize = hexSum, csize
			mu.Unlock()
		})
	}
	wg.Wait()
	return chunks, first
}

func failed(mu *sync.Mutex, first *error) bool {
	mu.Lock()
	defer mu.Unlock()
	return *first != nil
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
