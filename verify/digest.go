package verify

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"

	sha256 "github.com/minio/sha256-simd"
)

// bufSize is the read size for hashing: large enough that syscalls do not show in
// a profile, small enough to keep memory flat however large a model is.
const bufSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// NewHash returns a sha256 that uses the CPU's SHA instructions where it has them.
func NewHash() hash.Hash { return sha256.New() }

// HashReader returns the hex sha256 of everything r yields and its length.
func HashReader(ctx context.Context, r io.Reader) (string, int64, error) {
	h := NewHash()
	n, err := CopyBuffer(ctx, h, r)
	if err != nil {
		return "", n, err
	}
	return HexDigest(h.Sum(nil)), n, nil
}

// HashFile returns the hex sha256 and size of the file at name.
func HashFile(ctx context.Context, name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sum, n, err := HashReader(ctx, f)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", name, err)
	}
	return sum, n, nil
}

// CopyBuffer copies r to w with a pooled buffer, checking ctx between reads so a
// cancelled operation stops within one buffer.
func CopyBuffer(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := r.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Workers is how many files are hashed at once by default: one per CPU, since a
// hash of a cached file is bound by the CPU and one file cannot be split.
func Workers() int { return runtime.GOMAXPROCS(0) }

// forEachFile runs fn for every file on up to workers goroutines, largest files
// first so that one big file does not finish alone at the end. It returns the
// first error in manifest order, so the message is stable from run to run.
func forEachFile(ctx context.Context, files []File, workers int, fn func(ctx context.Context, i int) error) error {
	if workers < 1 {
		workers = 1
	}
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return files[order[a]].Size > files[order[b]].Size })

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(len(files), 1)) {
		wg.Go(func() {
			for i := range next {
				if errs[i] = fn(ctx, i); errs[i] != nil {
					cancel()
				}
			}
		})
	}
	for _, i := range order {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := firstError(errs, ctx); err != nil {
		return err
	}
	return parent.Err() // cancelled before every file was handed out
}

// firstError prefers a real failure over the cancellation it caused in others.
func firstError(errs []error, ctx context.Context) error {
	var cancelled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			cancelled = err
			continue
		}
		return err
	}
	return cancelled
}
