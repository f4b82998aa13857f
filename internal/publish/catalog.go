package publish

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// A catalog lists what one pack holds: <repo>/packs/<hh>/<sha>.cat next to
// <sha>.pack. Publish writes it after the pack is renamed into place under the
// digest publish computed while writing it, so a catalog always describes a
// complete pack. It is the publisher's own bookkeeping (devices never read
// it), and it is only a hint: before a new version references a chunk through
// a catalog, publish reads that chunk from the pack and compares it with the
// bytes it is publishing (store.verifyKnown). A planted or stale catalog can
// cost a rewrite of the chunk, never a manifest pointing at wrong data.
//
// Format (little-endian): "MSLTCAT1", pack sha256 [32], count uint32, then
// count × {sha256 [32]; size uint32; csize uint32; offset uint64}, the frames
// in pack order, contiguous from offset 0 to the pack's size.
const (
	catMagic     = "MSLTCAT1"
	catEntrySize = 32 + 4 + 4 + 8
	catExt       = ".cat"
	packExt      = ".pack"
)

// catEntry is one chunk of a pack.
type catEntry struct {
	sum    chunkindex.Digest
	size   uint32
	csize  uint32
	offset uint64
}

// known is where the repository holds one chunk, as a catalog says.
type known struct {
	pack   chunkindex.Digest
	size   uint32
	csize  uint32
	offset uint64
}

func catalogPath(pack chunkindex.Digest) string {
	return strings.TrimSuffix(chunkindex.PackPath(pack), packExt) + catExt
}

func encodeCatalog(pack chunkindex.Digest, entries []catEntry) []byte {
	b := make([]byte, 0, len(catMagic)+36+catEntrySize*len(entries))
	b = append(b, catMagic...)
	b = append(b, pack[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.sum[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.size)
		b = binary.LittleEndian.AppendUint32(b, e.csize)
		b = binary.LittleEndian.AppendUint64(b, e.offset)
	}
	return b
}

var errCatalog = errors.New("not a catalog of this pack")

// readCatalog streams the catalog of pack, checking that it is the catalog of
// that pack and that its frames tile the pack file exactly; add is called
// for each entry only once the whole catalog checked out.
func readCatalog(repo string, pack chunkindex.Digest, add func(catEntry)) error {
	f, err := os.Open(filepath.Join(repo, filepath.FromSlash(catalogPath(pack))))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pfi, err := os.Stat(filepath.Join(repo, filepath.FromSlash(chunkindex.PackPath(pack))))
	if err != nil {
		return fmt.Errorf("%w: the pack: %w", errCatalog, err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var h [len(catMagic) + 36]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || string(h[:8]) != catMagic || !bytes.Equal(h[8:40], pack[:]) {
		return errCatalog
	}
	n := binary.LittleEndian.Uint32(h[40:])
	if n > chunkindex.MaxChunks || fi.Size() != int64(len(h))+int64(n)*catEntrySize {
		return errCatalog
	}
	entries := make([]catEntry, 0, min(n, 1<<16))
	var end uint64
	var b [catEntrySize]byte
	for range n {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return errCatalog
		}
		var e catEntry
		copy(e.sum[:], b[:32])
		e.size = binary.LittleEndian.Uint32(b[32:])
		e.csize = binary.LittleEndian.Uint32(b[36:])
		e.offset = binary.LittleEndian.Uint64(b[40:])
		if e.offset != end || e.csize == 0 || e.size == 0 || e.csize > verify.MaxChunkSize || e.size > verify.MaxChunkSize {
			return errCatalog
		}
		end += uint64(e.csize)
		entries = append(entries, e)
	}
	if end != uint64(pfi.Size()) {
		return fmt.Errorf("%w: its frames end at %d, the pack has %d bytes", errCatalog, end, pfi.Size())
	}
	for _, e := range entries {
		add(e)
	}
	return nil
}

// loadCatalogs reads every pack's catalog into a map by chunk digest. A pack
// without a good catalog is skipped with a warning: its chunks are written
// again if a version needs them (prune removes the pack once nothing
// references it). The map costs about 100 bytes a distinct chunk of the repository.
func loadCatalogs(repo string) (map[chunkindex.Digest]known, error) {
	out := map[chunkindex.Digest]known{}
	shards, err := os.ReadDir(filepath.Join(repo, "packs"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the repository's packs: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		for _, pack := range packsIn(filepath.Join(repo, "packs", sh.Name())) {
			err := readCatalog(repo, pack, func(e catEntry) {
				if _, dup := out[e.sum]; !dup {
					out[e.sum] = known{pack: pack, size: e.size, csize: e.csize, offset: e.offset}
				}
			})
			if err != nil {
				slog.Warn("pack not reused: its catalog does not describe it; its chunks will be stored again if needed",
					"pack", pack.String(), "err", err)
			}
		}
	}
	return out, nil
}

// packsIn lists the packs of one shard directory by their digest, sorted
// (os.ReadDir sorts), so the choice between two copies of a chunk is stable.
func packsIn(dir string) []chunkindex.Digest {
	entries, _ := os.ReadDir(dir)
	var out []chunkindex.Digest
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), packExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if d, err := chunkindex.ParseDigest(name); err == nil {
			out = append(out, d)
		}
	}
	return out
}
