package verify

import "encoding/base64"

// A schema-2 manifest may carry a small file's bytes (File.Data), as an OCI
// descriptor's data field does, so a device installs a changed config without
// a request beyond the manifest. The bytes are as trusted as the manifest
// that signs them once they match the file's size and sha256. Publish still
// puts the file's chunks in the index and packs: a reader that ignores Data
// (modelslot before it, Parse ignoring unknown fields) installs as before.
const (
	// InlineMax is the largest file whose bytes a manifest may carry.
	InlineMax = 4096
	// InlineBudget bounds the decoded bytes of all of a manifest's inline
	// files, so a manifest stays small to fetch and to keep in every slot.
	InlineBudget = 64 << 10
)

// Inline returns the file's inline bytes (File.Data decoded), or nil when it
// carries none. Only a validated manifest's files are to be asked: Validate
// checked the bytes against the file's size and sha256.
func (f *File) Inline() []byte {
	if f.Data == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(f.Data)
	if err != nil {
		return nil
	}
	return b
}

// validateInline holds the files' inline bytes to their rules: schema 2
// only, a file of at most InlineMax bytes, decoding to exactly the file
// (its size and sha256), and at most InlineBudget bytes in all.
func (m *Manifest) validateInline() error {
	var total int64
	for _, f := range m.Files {
		if f.Data == "" {
			continue
		}
		if m.Schema < SchemaIndexed {
			return rejectf("file %q carries its data in a schema %d manifest: only schema 2 may", f.Path, m.Schema)
		}
		if f.Size > InlineMax {
			return rejectf("file %q carries its data inline, but has %d bytes: at most %d may be inline", f.Path, f.Size, InlineMax)
		}
		b, err := base64.StdEncoding.DecodeString(f.Data)
		if err != nil {
			return rejectf("file %q: its inline data is not standard base64: %v", f.Path, err)
		}
		if int64(len(b)) != f.Size {
			return rejectf("file %q: its inline data has %d bytes, the file %d", f.Path, len(b), f.Size)
		}
		if got := sumHex(b); got != f.SHA256 {
			return rejectf("file %q: its inline data has sha256 %s, the file %s", f.Path, got, f.SHA256)
		}
		if total += f.Size; total > InlineBudget {
			return rejectf("file %q: the manifest's inline data adds up to more than the %d bytes allowed", f.Path, InlineBudget)
		}
	}
	return nil
}

func sumHex(b []byte) string {
	h := NewHash()
	h.Write(b)
	return HexDigest(h.Sum(nil))
}
