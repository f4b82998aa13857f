package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
	"golang.org/x/sys/unix"
)

// getFile downloads url into the file rel of the work directory w (replacing
// it), refusing a body larger than limit; check, if not nil, judges the file,
// and its error is retried like a transport failure. It retries from the
// start: the files it is for (an index, locations) are small next to the
// model.
func (c *Client) getFile(ctx context.Context, url string, w *work, rel string, limit int64, check func(string) error) error {
	return c.retry(ctx, url, func(ctx context.Context) error {
		resp, err := c.request(ctx, url, "", false)
		if err != nil {
			return err
		}
		body := c.watch(ctx, resp.Body)
		defer body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		out, err := w.open(rel, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return permanent(fmt.Errorf("staging: %w", err))
		}
		n, err := io.Copy(out, io.LimitReader(body, limit+1))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n > limit {
			err = fmt.Errorf("larger than the %d bytes allowed", limit)
		}
		if err == nil && check != nil {
			err = check(rel)
		}
		return err
	})
}

// loadIndex downloads the index the manifest pins into the work directory,
// unless staging has it already, intact. Sections the slots srcs hold are
// copied and those the manifest alone gives are derived, not downloaded
// (index_sections.go). The locations come later, if at all (locations).
func (c *Client) loadIndex(ctx context.Context, repoURL string, m *verify.Manifest, w *work, srcs sources) error {
	if err := w.mkdir("."); err != nil {
		return err
	}
	if checkIndexFile(w, IndexFile, m.Index) != nil {
		part := IndexFile + ".part"
		url := joinURL(repoURL, chunkindex.IndexPath(m.Index.SHA256))
		// Other bytes (a captive portal, a bad mirror) are tried again.
		check := func(rel string) error { return checkIndexFile(w, rel, m.Index) }
		done, err := c.assembleIndex(ctx, url, m, w, part, srcs)
		if err == nil && !done {
			err = c.getFile(ctx, url, w, part, m.Index.Size, check)
		}
		if err != nil {
			return fmt.Errorf("chunk index: %w", err)
		}
		if err := w.rename(part, IndexFile); err != nil {
			return err
		}
	}
	return nil
}

// locLoader brings a version's locations into the work directory (whole or
// their head, loadLocations) and returns the fetcher of the entries the
// plan needs when only the head came, else nil.
type locLoader func(ctx context.Context) (locFetcher, error)

// locations is the loader of m's locations in the repository at repoURL:
// a plan calls it once it finds chunks to download, so an install that
// downloads nothing (every byte in a slot, staging or the manifest) makes
// no request for them.
func (c *Client) locations(repoURL string, m *verify.Manifest, w *work) locLoader {
	url := joinURL(repoURL, chunkindex.LocationsPath(m.Index.SHA256))
	return func(ctx context.Context) (locFetcher, error) {
		more, err := c.loadLocations(ctx, url, w, locFile, m)
		if err != nil {
			return nil, fmt.Errorf("chunk locations: %w", err)
		}
		return more, nil
	}
}

// locLimit bounds a repository's locations for m: a pack a chunk at most.
func locLimit(m *verify.Manifest) int64 {
	n := m.Index.Chunks
	_, most := chunkindex.LocationsBounds(uint32(min(n, chunkindex.MaxPacks)), n)
	return most
}

// indexSpace refuses, before a byte is written, an index and locations the
// staging filesystem cannot hold (the index may be hundreds of MB).
func indexSpace(dir string, m *verify.Manifest) error {
	var st unix.Statfs_t
	if err := statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	return enough(dir, avail(&st), m.Index.Size+locLimit(m)+DefaultMargin, "the chunk index and its locations")
}
