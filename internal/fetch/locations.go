package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// A repository's locations (1–4 bytes a chunk in blocks of
// chunkindex.LocBlock, chunkindex/locations.go) are fetched whole when they
// are small, in the one request that asks for their head. When they are
// larger, the head (header, pack table and block directory) is kept in a
// sparse staging file and, once the plan knows which chunks it downloads,
// only the blocks that hold those chunks' entries are requested
// (locFetcher): a small change of a big model costs a few blocks of
// locations. Entries are unsigned and checked when read
// (chunkindex.LocReader), and a wrong one costs a retry, never a wrong byte
// (the chunk's digest is pinned by the index).

// locHead is the bytes asked for first: the header, a pack table of up to
// ~100 packs with its block directory, and the whole of locations no larger
// (a model of about 2,000–4,000 chunks, 128–256 MiB). A variable: tests
// lower it.
var locHead int64 = 4 << 10

// Block ranges of locations fetched in part are joined across gaps of up to
// locGap bytes, then further, smallest gaps first, down to locRequests
// requests.
const (
	locGap      = 4 << 10
	locRequests = 8
)

// ordRange is the index ordinals [first, end).
type ordRange struct{ first, end int64 }

// locFetcher brings the locations of the entries in ords (ascending) into
// the staged locations file.
type locFetcher func(ctx context.Context, ords []ordRange) error

// loadLocations brings the locations at url into rel of the work directory, whole or their head
// only; for the head only it returns the fetcher of the entries the plan
// needs, else nil.
func (c *Client) loadLocations(ctx context.Context, url string, w *work, rel string, m *verify.Manifest) (locFetcher, error) {
	limit := locLimit(m)
	var have int64 // the bytes from the start the head brought
	partial := false
	err := c.retry(ctx, url, func(ctx context.Context) error {
		resp, err := c.request(ctx, url, fmt.Sprintf("bytes=0-%d", locHead-1), false)
		if err != nil {
			return err
		}
		body := c.watch(ctx, resp.Body)
		defer body.Close()
		out, err := w.open(rel, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return permanent(fmt.Errorf("staging: %w", err))
		}
		defer out.Close()
		switch resp.StatusCode {
		case http.StatusOK: // no Range support: the whole file
			partial = false
			n, err := io.Copy(out, io.LimitReader(body, limit+1))
			if err == nil && n > limit {
				err = fmt.Errorf("larger than the %d bytes allowed", limit)
			}
			return err
		case http.StatusPartialContent:
		default:
			return statusError(resp)
		}
		var first, last, total int64
		if n, _ := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total); n != 3 || first != 0 || last >= total {
			return fmt.Errorf("asked for bytes=0-%d, the server answered Content-Range %q", locHead-1, resp.Header.Get("Content-Range"))
		}
		if total > limit {
			return fmt.Errorf("%d bytes, larger than the %d allowed", total, limit)
		}
		n, err := io.Copy(out, io.LimitReader(body, last+1))
		if err == nil && n != last+1 {
			err = shortBody(uint64(n), io.ErrUnexpectedEOF)
		}
		if err != nil || n == total {
			partial = false
			return err // whole
		}
		hdr := make([]byte, chunkindex.LocHeaderSize)
		if _, err := out.ReadAt(hdr, 0); err != nil {
			return locErr(err)
		}
		packs, chunks, err := chunkindex.ParseLocHeader(hdr)
		if err != nil {
			return locErr(err)
		}
		least, most := chunkindex.LocationsBounds(packs, int64(chunks))
		if int64(chunks) != m.Index.Chunks || total < least || total > most {
			return locErr(fmt.Errorf("%w: %d bytes for %d packs and %d chunks (the index has %d)", chunkindex.ErrLocations, total, packs, chunks, m.Index.Chunks))
		}
		if err := out.Truncate(total); err != nil {
			return permanent(fmt.Errorf("staging: %w", err))
		}
		partial, have = true, n
		if head := chunkindex.LocHeadSize(packs, int64(chunks)); head > n { // a pack table or directory larger than the head
			if _, err := c.getRangeInto(ctx, url, out, n, head, total); err != nil {
				return err
			}
			have = head
		}
		return nil
	})
	if err != nil || !partial {
		return nil, err
	}
	return func(ctx context.Context, ords []ordRange) error {
		out, err := w.open(rel, os.O_RDWR)
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		defer out.Close()
		size, err := out.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("staging: %w", err)
		}
		lr, err := chunkindex.NewLocReader(io.NewSectionReader(out, 0, size), m.Index.Chunks)
		if err != nil {
			return locErr(err)
		}
		if lr.Size() != size {
			return locErr(fmt.Errorf("%w: the block directory makes %d bytes, the server %d", chunkindex.ErrLocations, lr.Size(), size))
		}
		for _, r := range joinSpans(blockSpans(lr, ords)) {
			start, end := max(r.first, have), r.end
			if start >= end {
				continue // the head brought them
			}
			whole := false
			err := c.retry(ctx, url, func(ctx context.Context) error {
				var err error
				whole, err = c.getRangeInto(ctx, url, out, start, end, size)
				return err
			})
			if err != nil {
				return fmt.Errorf("chunk locations: %w", err)
			}
			if whole {
				return nil
			}
		}
		return nil
	}, nil
}

// blockSpans is the bytes of the locations' blocks that hold the entries of
// ords, as ascending ranges, neighbours merged.
func blockSpans(lr *chunkindex.LocReader, ords []ordRange) []ordRange {
	var out []ordRange
	for _, o := range ords {
		a, b := lr.BlockSpan(o.first, o.end)
		if n := len(out); n > 0 && a <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, b)
			continue
		}
		out = append(out, ordRange{a, b})
	}
	return out
}

// getRangeInto writes bytes [start, end) of url at their offsets in out. A
// server that ignores Range sends the whole file (of size bytes): it is
// written whole and whole is true.
func (c *Client) getRangeInto(ctx context.Context, url string, out *os.File, start, end, size int64) (whole bool, err error) {
	body, whole, err := c.getRange(ctx, url, start, end, false)
	if err != nil {
		return false, err
	}
	defer body.Close()
	if whole {
		start, end = 0, size
	}
	n, err := io.Copy(io.NewOffsetWriter(out, start), io.LimitReader(body, end-start))
	if err == nil && n != end-start {
		err = shortBody(uint64(start+n), io.ErrUnexpectedEOF)
	}
	return whole, err
}

// joinSpans joins byte ranges less than locGap apart, then the closest ones
// until at most locRequests are left.
func joinSpans(spans []ordRange) []ordRange {
	starts := groupClose(len(spans), func(i int) int64 { return spans[i].first - spans[i-1].end }, locGap, locRequests)
	groups := splitAt(spans, starts)
	out := make([]ordRange, len(groups))
	for j, g := range groups {
		out[j] = ordRange{g[0].first, g[len(g)-1].end}
	}
	return out
}
