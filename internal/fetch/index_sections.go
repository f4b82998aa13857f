package fetch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// The index of a version whose files pin their sections (verify.File.Index)
// is assembled from the sections the device already has — a file the new
// version did not change has, byte for byte, the section a slot's stored
// index holds for it — and Range requests for the others, so a config-only
// change of a 20 GiB model fetches one small section, not megabytes of index.
// Every section is checked against its signed pin as it is written, and the
// whole result against the index's pin before it is used.

// sectionGap is the most bytes of sections not needed read through to join
// two needed ones into one request: below it another request costs more.
const sectionGap = 16 << 10

// indexSection is one file's section of the new index and where it comes from.
type indexSection struct {
	off, end int64
	sum      chunkindex.Digest
	local    *localSection // nil: fetched
}

// localSection is a section in a slot's stored index.
type localSection struct {
	name string
	off  int64
}

// localSections maps the digest of every section of the slots' stored
// indexes to where it is. An index that cannot be read is passed over: it
// costs only the download of its sections.
func localSections(srcs []*Active) map[chunkindex.Digest]localSection {
	out := map[chunkindex.Digest]localSection{}
	for _, a := range srcs {
		if a == nil || a.Manifest == nil || a.Manifest.Index == nil {
			continue
		}
		name := filepath.Join(a.Dir, verify.MetaDir, IndexFile)
		f, err := os.Open(name)
		if err == nil {
			err = chunkindex.ScanSections(io.LimitReader(f, a.Manifest.Index.Size), func(_ int, off, _ int64, sum chunkindex.Digest) {
				if _, ok := out[sum]; !ok {
					out[sum] = localSection{name: name, off: off}
				}
			})
			f.Close()
		}
		if err != nil {
			slog.Debug("not reusing a slot's index sections", "index", name, "err", err)
		}
	}
	return out
}

// indexSections lays out m's index by its files' pins, each section marked
// local where a slot holds it; nil when m pins no sections.
func indexSections(m *verify.Manifest, local map[chunkindex.Digest]localSection) ([]indexSection, error) {
	if len(m.Files) == 0 || m.Files[0].Index == nil {
		return nil, nil
	}
	out := make([]indexSection, len(m.Files))
	off := int64(chunkindex.HeaderSize)
	for i, f := range m.Files {
		sum, err := chunkindex.ParseDigest(f.Index.SHA256)
		if err != nil {
			return nil, rejectf("file %s: index section: %v", f.Path, err)
		}
		end := off + chunkindex.SectionSize(f.Index.Chunks)
		out[i] = indexSection{off: off, end: end, sum: sum}
		if l, ok := local[sum]; ok {
			out[i].local = &l
		}
		off = end
	}
	return out, nil
}

// assembleIndex writes the index m pins into part from the slots' sections
// and Range requests to url for the rest, and checks it whole. It returns
// false, having written nothing, when m pins no sections or the slots hold
// none of them: one GET of the whole index is then the cheapest.
func (c *Client) assembleIndex(ctx context.Context, url string, m *verify.Manifest, part string, srcs []*Active) (bool, error) {
	secs, err := indexSections(m, localSections(srcs))
	if err != nil || !slices.ContainsFunc(secs, func(s indexSection) bool { return s.local != nil }) {
		return false, err
	}
	out, err := os.Create(part)
	if err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	defer out.Close()
	if _, err := out.WriteAt(chunkindex.Header(len(m.Files), uint64(m.Index.Chunks)), 0); err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	var need []indexSection
	for _, s := range secs {
		if s.local == nil || copySection(s, out) != nil {
			need = append(need, s) // a slot's section that no longer matches is fetched
		}
	}
	for _, r := range sectionRanges(need) {
		whole := false
		err := c.retry(ctx, url, func(ctx context.Context) error {
			var err error
			whole, err = c.fetchSections(ctx, url, r, out, m.Index.Size)
			return err
		})
		if err != nil {
			return false, err
		}
		if whole {
			break // the server sent the whole index: nothing is missing
		}
	}
	if err := out.Close(); err != nil {
		return false, permanent(fmt.Errorf("staging: %w", err))
	}
	if err := checkIndexFile(part, m.Index); err != nil {
		// Each section matched its pin, so this is a manifest whose pins
		// disagree with its index: the whole index, as pinned, decides.
		slog.Info("the assembled chunk index does not match its pin; fetching it whole", "err", err)
		return false, nil
	}
	slog.Debug("chunk index assembled", "sections", len(secs), "fetched", len(need))
	return true, nil
}

// copySection copies a slot's section into out, checking it against its pin.
func copySection(s indexSection, out *os.File) error {
	f, err := os.Open(s.local.name)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeSection(out, s, io.NewSectionReader(f, s.local.off, s.end-s.off))
}

// writeSection streams section s from r to its place in out, hashing it on
// the way (a section of a huge file is megabytes: never held whole), and
// fails if the bytes are not the ones its pin names. Bytes that fail are
// overwritten by the next try, and the whole index is checked at the end.
func writeSection(out *os.File, s indexSection, r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(io.NewOffsetWriter(out, s.off), io.TeeReader(io.LimitReader(r, s.end-s.off), h))
	if err != nil {
		return err
	}
	if n != s.end-s.off {
		return shortBody(uint64(s.off+n), io.ErrUnexpectedEOF)
	}
	if chunkindex.Digest(h.Sum(nil)) != s.sum {
		return fmt.Errorf("%w: index bytes %d-%d are not the section the manifest pins", ErrDownload, s.off, s.end-1)
	}
	return nil
}

// sectionRanges joins the needed sections (in index order) into the byte
// ranges to request: neighbours, and sections at most sectionGap apart.
func sectionRanges(need []indexSection) [][]indexSection {
	var out [][]indexSection
	for i, s := range need {
		if i > 0 && s.off-need[i-1].end <= sectionGap {
			out[len(out)-1] = append(out[len(out)-1], s)
			continue
		}
		out = append(out, []indexSection{s})
	}
	return out
}

// fetchSections requests the bytes of the sections r, checks each against its
// pin and writes it at its place in out. A server that ignores Range sends
// the whole index: it is written whole (whole is true) and checked by the
// caller like any other.
func (c *Client) fetchSections(ctx context.Context, url string, r []indexSection, out *os.File, size int64) (whole bool, err error) {
	start, end := r[0].off, r[len(r)-1].end
	want := fmt.Sprintf("bytes=%d-%d", start, end-1)
	resp, err := c.request(ctx, url, want, false)
	if err != nil {
		return false, err
	}
	body := c.watch(ctx, resp.Body)
	defer body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		n, err := io.Copy(io.NewOffsetWriter(out, 0), io.LimitReader(body, size+1))
		if err == nil && n != size {
			err = fmt.Errorf("%w: the index has %d bytes, the manifest pins %d", ErrDownload, n, size)
		}
		return true, err
	case http.StatusPartialContent:
		if err := checkRange(resp.Header.Get("Content-Range"), uint64(start), uint64(end)); err != nil {
			return false, fmt.Errorf("asked for %s: %w", want, err)
		}
	default:
		return false, statusError(resp)
	}
	pos := start
	for _, s := range r {
		if _, err := io.CopyN(io.Discard, body, s.off-pos); err != nil {
			return false, shortBody(uint64(s.off), err)
		}
		if err := writeSection(out, s, body); err != nil {
			return false, err
		}
		pos = s.end
	}
	return false, nil
}
