package chunkindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"

	"github.com/modelslot/modelslot/verify"
)

// DerivedSection is the section a file cut into one chunk has (none for an
// empty file): what the manifest alone says it must be — the chunk is the
// whole file, (f.SHA256, f.Size) — encoded as WriteIndex writes it. It
// returns nil unless those bytes are the ones the file's signed pin names, so
// only the pin decides: a device writes such a section itself instead of
// requesting it, and a file cut otherwise is fetched as before.
func DerivedSection(f verify.File) []byte {
	if f.Index == nil || f.Size > verify.MaxChunkSize {
		return nil
	}
	var entries []Entry
	if f.Size > 0 {
		sum, err := ParseDigest(f.SHA256)
		if err != nil {
			return nil
		}
		entries = []Entry{{Sum: sum, Size: uint32(f.Size)}}
	}
	if int64(len(entries)) != f.Index.Chunks {
		return nil
	}
	var b bytes.Buffer
	writeSection(&b, entries)
	if sum := sha256.Sum256(b.Bytes()); hex.EncodeToString(sum[:]) != f.Index.SHA256 {
		return nil
	}
	return b.Bytes()
}
