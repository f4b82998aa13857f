package fetch

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// sectionsCase publishes a model with a config.json, installs it, changes
// only config.json and publishes v2: the config-only update of the delta
// table. Its config has several chunks (a vocabulary): a file of one chunk
// has its section derived from the manifest, never fetched (inline2_test.go).
// It returns the repository (log reset), v2 and the active v1 slot.
func sectionsCase(t *testing.T, noSections bool) (*repo2, *verify.Manifest, *Active) {
	t.Helper()
	r := newRepo2(t)
	r.noSections = noSections
	dir := bigModel(t, 1, 2<<20)
	vocab := hex.EncodeToString(randomBytes(64<<10, 9))
	config := func(heads int) []byte {
		return fmt.Appendf(nil, `{"layers": 4, "heads": %d, "vocab": %q}`, heads, vocab)
	}
	writeFile(t, dir, "config.json", config(8))
	m1 := r.publish2(dir, "v1")
	out1, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "config.json", config(16))
	m2 := r.publish2(dir, "v2")
	r.resetLog()
	return r, m2, r.asSlot(t, out1, m1)
}

func fileByPath(t *testing.T, m *verify.Manifest, p string) verify.File {
	t.Helper()
	f, ok := m.Lookup(p)
	if !ok {
		t.Fatalf("%s is not in the manifest", p)
	}
	return f
}

// A config-only change of a model fetches the changed file's index section
// with one Range request: the unchanged files' sections come from the active
// slot's stored index. Published without sections (an older publisher), the
// same change fetches the whole index, as before.
func TestFormat2ConfigOnlyChangeFetchesOnlyItsIndexSection(t *testing.T) {
	r, m2, active := sectionsCase(t, false)
	if _, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
		t.Fatal(err)
	} else if p.FetchChunks != 1 {
		t.Fatalf("config-only change fetched %d chunks, want 1: %s", p.FetchChunks, p.Summary())
	}
	want := chunkindex.SectionSize(fileByPath(t, m2, "config.json").Index.Chunks)
	if len(r.idx) != 1 || !strings.HasPrefix(r.idx[0], "bytes=") || r.idxSent.Load() != want {
		t.Fatalf("index requests %q sent %d bytes; want one Range request of the config's %d-byte section (the index has %d)",
			r.idx, r.idxSent.Load(), want, m2.Index.Size)
	}

	old, m2, active := sectionsCase(t, true)
	if _, _, _, err := install2(t, fastClient(), old.channelURL(), old.trusted(), active, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if len(old.idx) != 1 || old.idx[0] != "" || old.idxSent.Load() != m2.Index.Size {
		t.Fatalf("without sections: index requests %q sent %d bytes; want one GET of the whole %d", old.idx, old.idxSent.Load(), m2.Index.Size)
	}
}

// A server that ignores Range answers the section request with the whole
// index: it is taken whole, checked, and the install goes on.
func TestFormat2IndexSectionsFromAServerIgnoringRange(t *testing.T) {
	r, m2, active := sectionsCase(t, false)
	r.ignoreRange(".idx")
	if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
		t.Fatalf("install from a server ignoring Range on the index: %v", err)
	}
	if len(r.idx) != 1 || r.idxSent.Load() != m2.Index.Size {
		t.Fatalf("index requests %q sent %d bytes, want one answered whole (%d)", r.idx, r.idxSent.Load(), m2.Index.Size)
	}
}

// Bytes that are not the pinned section (a bad mirror, a proxy mangling
// ranges) are retried and end in a clear download error; nothing is
// installed and the active slot still verifies.
func TestFormat2IndexSectionOtherBytesIsADownloadError(t *testing.T) {
	r, _, active := sectionsCase(t, false)
	files := http.FileServer(http.Dir(r.dir))
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, ".idx") || req.Header.Get("Range") == "" {
			return false
		}
		files.ServeHTTP(&flipWriter{ResponseWriter: w}, req)
		return true
	})
	_, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	if !errors.Is(err, ErrDownload) || !strings.Contains(err.Error(), "not the piece the manifest pins") {
		t.Fatalf("mangled index section: got %v, want ErrDownload naming the section", err)
	}
	if len(r.idx) < 2 {
		t.Fatalf("the mangled section was requested %d times, want retries", len(r.idx))
	}
	if err := verify.VerifyTree(t.Context(), active.Dir, active.Manifest, 1); err != nil {
		t.Fatalf("the active slot no longer verifies: %v", err)
	}
}

// flipWriter flips the first body byte of a response.
type flipWriter struct {
	http.ResponseWriter
	done bool
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if !f.done && len(p) > 0 {
		f.done = true
		q := append([]byte(nil), p...)
		q[0] ^= 0xff
		return f.ResponseWriter.Write(q)
	}
	return f.ResponseWriter.Write(p)
}

// A slot's stored index that no longer holds its sections (a bit flipped
// on its disk) is not trusted: the sections it should have given are
// fetched, and the install is right.
func TestFormat2DamagedStoredIndexSectionsAreFetched(t *testing.T) {
	r, m2, active := sectionsCase(t, false)
	name := filepath.Join(active.Dir, verify.MetaDir, IndexFile)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// The first entry of weights.bin's section (a file v2 did not change).
	off := int64(chunkindex.HeaderSize)
	for _, f := range active.Manifest.Files {
		if f.Path == "weights.bin" {
			break
		}
		off += chunkindex.SectionSize(f.Index.Chunks)
	}
	b[off+4] ^= 0xff
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	want := chunkindex.SectionSize(fileByPath(t, m2, "weights.bin").Index.Chunks) + chunkindex.SectionSize(fileByPath(t, m2, "config.json").Index.Chunks)
	if got := r.idxSent.Load(); got < want || got >= m2.Index.Size {
		t.Fatalf("index bytes sent %d, want the damaged weights.bin section and the changed config.json's (%d), not the whole %d", got, want, m2.Index.Size)
	}
}

// A change in the middle of a big single-file model (a GGUF, an ONNX file)
// fetches the index segments around it, not the file's whole section: the
// other segments come from the active slot's stored index.
func TestFormat2ChangeInABigFileFetchesOnlyItsIndexSegments(t *testing.T) {
	r, m2, active := bigFileCase(t)
	segs, err := m2.Files[0].Index.SegmentList()
	if err != nil || len(segs) < 3 {
		t.Fatalf("a %d-chunk file has %d segments (%v), want several", m2.Files[0].Index.Chunks, len(segs), err)
	}
	if _, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
		t.Fatal(err)
	} else if p.FetchSize > 256<<10 {
		t.Fatalf("a 64 KiB change fetched %d bytes of chunks: %s", p.FetchSize, p.Summary())
	}
	section := chunkindex.SectionSize(m2.Files[0].Index.Chunks)
	t.Logf("index: %d of %d bytes sent, %d segments", r.idxSent.Load(), section, len(segs))
	if got := r.idxSent.Load(); len(r.idx) != 1 || got == 0 || got > section/2 {
		t.Fatalf("index requests %q sent %d bytes of a %d-byte section (%d segments); want one request for the changed segments", r.idx, got, section, len(segs))
	}
}

// ignoreRange makes the server answer every request for a file ending in
// suffix whole (HTTP 200), as a server without Range support does.
func (r *repo) ignoreRange(suffix string) {
	files := http.FileServer(http.Dir(r.dir))
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, suffix) {
			return false
		}
		req.Header.Del("Range")
		files.ServeHTTP(w, req)
		return true
	})
}

// testLocHead is a head smaller than a quarter of bigFileCase's locations
// (810 bytes: 668 entries, most of one byte) and larger than v2's header,
// pack table (two packs) and block directory (108 bytes).
const testLocHead = 160

// lowerLocHead makes locations larger than n bytes come in part, for one test.
func lowerLocHead(t *testing.T, n int64) {
	old := locHead
	locHead = n
	t.Cleanup(func() { locHead = old })
}

// bigFileCase is TestFormat2ChangeInABigFile's update: a 24 MiB file with
// 64 KiB rewritten in its middle, the log reset before the install of v2.
func bigFileCase(t *testing.T) (*repo2, *verify.Manifest, *Active) {
	r := newRepo2(t)
	dir := t.TempDir()
	w := randomBytes(24<<20, 5)
	writeFile(t, dir, "model.gguf", w)
	m1 := r.publish2(dir, "v1")
	out1, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	copy(w[12<<20:], randomBytes(64<<10, 6))
	writeFile(t, dir, "model.gguf", w)
	m2 := r.publish2(dir, "v2")
	r.resetLog()
	return r, m2, r.asSlot(t, out1, m1)
}

// Locations larger than the head asked for first come in part: the head,
// then the blocks that hold the entries of the chunks the plan downloads,
// and nothing else.
func TestFormat2LocationsInPartFetchOnlyTheEntriesNeeded(t *testing.T) {
	lowerLocHead(t, testLocHead)
	r, m2, active := bigFileCase(t)
	// The chunks v1 lacks are one run (one 64 KiB region changed): their
	// locations are the blocks BlockSpan gives for it.
	have := map[chunkindex.Digest]bool{}
	forEachChunk(t, filepath.Join(active.Dir, filepath.FromSlash(storedIndex)), active.Manifest, func(c chunkindex.Chunk) { have[c.Sum] = true })
	first, end := int64(-1), int64(0)
	forEachChunk(t, filepath.Join(r.dir, filepath.FromSlash(chunkindex.IndexPath(m2.Index.SHA256))), m2, func(c chunkindex.Chunk) {
		if !have[c.Sum] {
			if first < 0 {
				first = c.Ordinal
			}
			end = c.Ordinal + 1
		}
	})
	name := filepath.Join(r.dir, filepath.FromSlash(chunkindex.LocationsPath(m2.Index.SHA256)))
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr, err := chunkindex.NewLocReader(f, m2.Index.Chunks)
	if err != nil {
		t.Fatal(err)
	}
	a, b := lr.BlockSpan(first, end)
	want := testLocHead + b - max(a, testLocHead)
	_, p, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("locations: %d of %d bytes in %d requests %q; %d chunks fetched (ordinals %d–%d)", r.locSent.Load(), lr.Size(), len(r.loc), r.loc, p.FetchChunks, first, end)
	if first < 0 || int64(p.FetchChunks) != end-first || len(r.loc) != 2 || r.locSent.Load() != want || want >= lr.Size()/2 {
		t.Fatalf("locations: %d requests %q sent %d bytes of %d; want the %d-byte head and bytes %d–%d, the blocks of the %d chunks fetched (%d)",
			len(r.loc), r.loc, r.locSent.Load(), lr.Size(), testLocHead, a, b, end-first, p.FetchChunks)
	}
}

// forEachChunk calls fn with each chunk of the index file name of m.
func forEachChunk(t *testing.T, name string, m *verify.Manifest, fn func(chunkindex.Chunk)) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ir, err := chunkindex.NewIndexReader(f, m)
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := ir.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(c)
	}
}

// A pack table that does not fit in the head is fetched next; a server that
// ignores Range sends the locations whole. Either way the install is right.
func TestFormat2LocationsInPartEdgeCases(t *testing.T) {
	t.Run("pack table past the head", func(t *testing.T) {
		lowerLocHead(t, int64(chunkindex.LocHeaderSize)+8)
		r, _, active := bigFileCase(t)
		if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		if len(r.loc) < 3 {
			t.Fatalf("locations requests %q: want the head, the rest of the pack table, the entries", r.loc)
		}
	})
	t.Run("server ignoring Range", func(t *testing.T) {
		lowerLocHead(t, testLocHead)
		r, m2, active := bigFileCase(t)
		r.ignoreRange(".loc")
		if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(r.dir, filepath.FromSlash(chunkindex.LocationsPath(m2.Index.SHA256))))
		if err != nil {
			t.Fatal(err)
		}
		if whole := fi.Size(); len(r.loc) != 1 || r.locSent.Load() != whole {
			t.Fatalf("locations requests %q sent %d bytes; want one answered whole (%d)", r.loc, r.locSent.Load(), whole)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		lowerLocHead(t, testLocHead)
		r, m2, active := bigFileCase(t)
		name := filepath.Join(r.dir, filepath.FromSlash(chunkindex.LocationsPath(m2.Index.SHA256)))
		b, _ := os.ReadFile(name)
		os.WriteFile(name, b[:len(b)-5], 0o644)
		_, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
		if !errors.Is(err, ErrDownload) || !errors.Is(err, chunkindex.ErrLocations) {
			t.Fatalf("truncated locations fetched in part: %v, want ErrDownload and ErrLocations", err)
		}
		if err := verify.VerifyTree(t.Context(), active.Dir, active.Manifest, 1); err != nil {
			t.Fatalf("the active slot no longer verifies: %v", err)
		}
	})
}

// A full install needs every location: in part, that is the head and one
// request for the rest, and no byte of them twice.
func TestFormat2LocationsInPartForAFullInstallFetchNothingTwice(t *testing.T) {
	lowerLocHead(t, testLocHead)
	r := newRepo2(t)
	dir := t.TempDir()
	writeFile(t, dir, "model.gguf", randomBytes(24<<20, 5))
	m := r.publish2(dir, "v1")
	r.resetLog()
	if _, _, _, err := install2(t, fastClient(), r.channelURL(), r.trusted(), nil, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(r.dir, filepath.FromSlash(chunkindex.LocationsPath(m.Index.SHA256))))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.loc) != 2 || r.locSent.Load() != fi.Size() {
		t.Fatalf("locations requests %q sent %d bytes; want the head and the rest, %d bytes in all", r.loc, r.locSent.Load(), fi.Size())
	}
}

// A server answering another range than the one asked for, for index pieces
// or for locations in part, gives a clear download error; nothing is
// installed and the active slot still verifies.
func TestFormat2IndexAndLocationsOtherContentRange(t *testing.T) {
	for _, suffix := range []string{".idx", ".loc"} {
		t.Run(suffix, func(t *testing.T) {
			lowerLocHead(t, testLocHead)
			r, m2, active := bigFileCase(t)
			name := chunkindex.IndexPath(m2.Index.SHA256)
			if suffix == ".loc" {
				name = chunkindex.LocationsPath(m2.Index.SHA256)
			}
			b, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(name)))
			if err != nil {
				t.Fatal(err)
			}
			r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
				var a, e int
				if !strings.HasSuffix(req.URL.Path, suffix) || req.Header.Get("Range") == "" {
					return false
				}
				if n, _ := fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &e); n != 2 || a == 0 {
					return false // the locations' head is served as asked
				}
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", a+1, e, len(b)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(b[a+1 : e+1])
				return true
			})
			_, _, _, err = install2(t, fastClient(), r.channelURL(), r.trusted(), active, t.TempDir())
			if !errors.Is(err, ErrDownload) || !strings.Contains(fmt.Sprint(err), "the server answered Content-Range") {
				t.Fatalf("another range than asked for %s: %v, want an error naming the Content-Range", suffix, err)
			}
			if err := verify.VerifyTree(t.Context(), active.Dir, active.Manifest, 1); err != nil {
				t.Fatalf("the active slot no longer verifies: %v", err)
			}
		})
	}
}
