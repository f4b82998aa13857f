package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// SchemaVersion is the newest manifest schema this build understands. A manifest
// with a higher schema is rejected rather than half understood.
const SchemaVersion = SchemaIndexed

// The manifest schemas (docs/repository.md § Formats).
const (
	// SchemaInline lists each file's chunks in the manifest (modelslot 0.1;
	// also every manifest built on the device from a directory, which has none).
	SchemaInline = 1
	// SchemaIndexed pins a separate chunk index by its digest (Index), so the
	// manifest stays small whatever the model's size; files carry no chunks.
	SchemaIndexed = 2
)

// ChannelSchema is the channel pointer's schema; it did not change with the
// manifest's.
const ChannelSchema = 1

// MaxManifestSize bounds a manifest before it is parsed, so a hostile or broken
// source cannot make the device allocate without limit.
const MaxManifestSize = 16 << 20

// MaxSequence is the highest sequence a manifest may carry: 2^53-1, the
// largest integer that a JSON number keeps exact in every reader (JavaScript,
// jq, Python's float parsing), so a fleet's dashboards never see two releases
// with the same sequence. A publisher at it must start a new model name; one
// release a second for a hundred million years does not get there.
const MaxSequence = 1<<53 - 1

// Manifest describes one version of one model: exactly the files a slot must
// hold, byte for byte. It is stored in every slot as .modelslot/manifest.json.
type Manifest struct {
	Schema   int       `json:"schema"`
	Model    string    `json:"model"`
	Version  string    `json:"version"`
	Sequence uint64    `json:"sequence"`          // monotonic per model; guards against downgrades
	Created  time.Time `json:"created,omitzero"`  // when it was built; informative only
	Insecure bool      `json:"insecure,omitzero"` // built on the device from an unsigned directory
	Files    []File    `json:"files"`
	Probe    *Probe    `json:"probe,omitempty"`
	Requires *Requires `json:"requires,omitempty"` // device constraints (requires.go)
	Index    *IndexRef `json:"index,omitempty"`    // schema 2: the chunk index (internal/chunkindex)
}

// IndexRef pins a version's chunk index: the binary list of every file's
// chunks, stored at <repo>/index/<hh>/<sha256>.idx (and carried in a bundle).
// A device downloads it whole, at most Size bytes, and checks its digest
// before it trusts an entry.
type IndexRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Chunks int64  `json:"chunks"` // entries in it, over all files
}

// MaxIndexSize bounds a chunk index: 2^24 chunks (a 1 TiB model at 64 KiB a
// chunk) of 36 bytes, plus four bytes a file.
const MaxIndexSize = 1<<24*36 + 4<<20

// File is one regular file of a model tree.
type File struct {
	Path   string   `json:"path"` // slash-separated, relative, clean (CheckPath)
	Size   int64    `json:"size"`
	Mode   FileMode `json:"mode"`             // permission bits only, as published; slots drop the write bits
	SHA256 string   `json:"sha256"`           // lower-case hex of the whole file
	Chunks []Chunk  `json:"chunks,omitempty"` // content-defined pieces, in order; empty for unchunked installs
	// Index pins this file's section of the chunk index (schema 2), so a
	// device that already holds the section (an unchanged file) fetches
	// only the sections of the files that changed. A modelslot older than
	// this field ignores it (Parse ignores unknown fields) and fetches the
	// whole index, which IndexRef still pins.
	Index *FileIndex `json:"index,omitempty"`
	// Data is the whole file, standard base64, for a file of at most
	// InlineMax bytes of a schema-2 manifest (inline.go): a device writes it
	// from here instead of downloading its chunks. Its chunks are still in
	// the index, for readers that ignore this field.
	Data string `json:"data,omitempty"`
}

// FileIndex pins one file's section of the chunk index: its chunk count (4
// bytes) and its entries, exactly as they stand in the index file. The
// section's offset in the index follows from the sections before it
// (internal/chunkindex.SectionSize).
type FileIndex struct {
	Chunks int64  `json:"chunks"`
	SHA256 string `json:"sha256"` // of the section's bytes
	// Segments divides a large file's entries into content-defined runs
	// (internal/chunkindex.SegmentsOf), each pinned on its own, so a device
	// fetches only the runs around a change in a big single-file model
	// (GGUF, ONNX) and copies the others from a slot. Base64 of, per
	// segment, its entry count (uint32 little-endian) and the sha256 of its
	// entries' bytes; empty when the file is one segment.
	Segments string `json:"segments,omitempty"`
}

// IndexSegment is one segment of a file's section of the chunk index.
type IndexSegment struct {
	Chunks uint32
	SHA256 [32]byte
}

// indexSegmentSize is the bytes one segment takes in FileIndex.Segments.
const indexSegmentSize = 4 + 32

// EncodeSegments is the FileIndex.Segments form of segs.
func EncodeSegments(segs []IndexSegment) string {
	b := make([]byte, 0, len(segs)*indexSegmentSize)
	for _, s := range segs {
		b = binary.LittleEndian.AppendUint32(b, s.Chunks)
		b = append(b, s.SHA256[:]...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// SegmentList decodes Segments (nil when the file is one segment), checking
// that the segments are not empty and add up to the file's chunks.
func (fi *FileIndex) SegmentList() ([]IndexSegment, error) {
	if fi.Segments == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(fi.Segments)
	if err != nil || len(b)%indexSegmentSize != 0 {
		return nil, rejectf("index segments: not base64 of %d-byte records", indexSegmentSize)
	}
	segs := make([]IndexSegment, len(b)/indexSegmentSize)
	var total int64
	for i := range segs {
		r := b[i*indexSegmentSize:]
		segs[i].Chunks = binary.LittleEndian.Uint32(r)
		copy(segs[i].SHA256[:], r[4:indexSegmentSize])
		if segs[i].Chunks == 0 {
			return nil, rejectf("index segment %d is empty", i)
		}
		total += int64(segs[i].Chunks)
	}
	if total != fi.Chunks {
		return nil, rejectf("index segments add up to %d chunks, the section has %d", total, fi.Chunks)
	}
	return segs, nil
}

// Chunk is one content-defined piece of a file in a repository or bundle. Its
// address is the sha256 of its uncompressed bytes.
type Chunk struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`  // uncompressed
	CSize  int64  `json:"csize"` // compressed (zstd) as stored
}

// Probe names the test data a model ships for its health check.
type Probe struct {
	Input     string  `json:"input"`               // path of the request body, e.g. probe/input.json
	Expected  string  `json:"expected"`            // path of the expected answer
	Tolerance float64 `json:"tolerance,omitempty"` // absolute tolerance on numeric outputs
	// Tolerances names a file of per-field tolerances (probe/tolerances.json:
	// JSON pointer → absolute tolerance, docs/integrations.md). A modelslot
	// older than this field ignores it, as Parse ignores every unknown field,
	// and applies Tolerance to every number.
	Tolerances string `json:"tolerances,omitempty"`
}

// FileMode is a permission set written as an octal string ("0644") in JSON, so a
// person reading a manifest sees what chmod would show.
type FileMode fs.FileMode

func (m FileMode) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%04o", uint32(m)))
}

func (m *FileMode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode must be an octal string like \"0644\": %w", err)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return fmt.Errorf("mode %q is not octal: %w", s, err)
	}
	*m = FileMode(v)
	return nil
}

var (
	modelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	hexDigestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// CheckModelName reports whether name can be a model name: it becomes a directory
// name and an MQTT topic level, so it is kept to [a-z0-9._-].
func CheckModelName(name string) error {
	if !modelNameRE.MatchString(name) {
		return rejectf("model name %q: use 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name)
	}
	return nil
}

// CheckVersion reports whether v can be a version label: printable, no '/', at
// most 128 bytes.
func CheckVersion(v string) error {
	if v == "" || len(v) > 128 || strings.ContainsRune(v, '/') ||
		strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0 {
		return rejectf("version %q: use 1-128 printable characters without spaces or '/'", v)
	}
	return nil
}

// CheckDigest reports whether d is a lower-case hex sha256.
func CheckDigest(d string) error {
	if !hexDigestRE.MatchString(d) {
		return rejectf("digest %q: want 64 lower-case hex characters", d)
	}
	return nil
}

// ParseManifest decodes and validates a manifest. Unknown fields are ignored so that a
// newer publisher can add information; a newer schema is refused.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, rejectf("manifest is %d bytes, more than the %d allowed", len(data), MaxManifestSize)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, rejectf("manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, rejectf("manifest has data after its JSON object")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes m as indented JSON with a final newline; its sha256 is the
// manifest digest recorded in state.json.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Validate checks every rule a manifest must follow before anything acts on it.
func (m *Manifest) Validate() error {
	if m.Schema < 1 || m.Schema > SchemaVersion {
		return rejectf("manifest schema %d: this modelslot understands 1 to %d; upgrade modelslot", m.Schema, SchemaVersion)
	}
	if err := CheckModelName(m.Model); err != nil {
		return err
	}
	if err := CheckVersion(m.Version); err != nil {
		return err
	}
	if m.Sequence > MaxSequence {
		return rejectf("manifest sequence %d: more than the %d allowed (2^53-1, the largest integer every JSON reader keeps exact); "+
			"a sequence this high would make every later release a downgrade", m.Sequence, uint64(MaxSequence))
	}
	paths := make([]string, 0, len(m.Files))
	for i := range m.Files {
		if err := m.Files[i].validate(); err != nil {
			return err
		}
		paths = append(paths, m.Files[i].Path)
	}
	if err := checkTree(paths); err != nil {
		return err
	}
	if err := m.validateChunkLimits(); err != nil { // rules of the repository format: chunks.go
		return err
	}
	if err := m.validateIndex(); err != nil {
		return err
	}
	if err := m.validateInline(); err != nil {
		return err
	}
	return m.validateProbe()
}

func (f *File) validate() error {
	if err := CheckPath(f.Path); err != nil {
		return err
	}
	if f.Size < 0 {
		return rejectf("file %q: negative size %d", f.Path, f.Size)
	}
	if fs.FileMode(f.Mode)&^fs.ModePerm != 0 {
		return rejectf("file %q: mode %04o is not a plain permission set (no setuid, setgid, sticky or file types)", f.Path, uint32(f.Mode))
	}
	if err := CheckDigest(f.SHA256); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	return f.validateChunks()
}

// validateChunks checks that the chunks, if any, add up to the file: a manifest
// whose chunk sizes disagree with the file size is refused before any download.
func (f *File) validateChunks() error {
	if len(f.Chunks) == 0 {
		return nil
	}
	var total int64
	for i, c := range f.Chunks {
		if err := CheckDigest(c.SHA256); err != nil {
			return fmt.Errorf("file %q chunk %d: %w", f.Path, i, err)
		}
		if c.Size <= 0 || c.CSize <= 0 {
			return rejectf("file %q chunk %d: sizes must be positive (size %d, csize %d)", f.Path, i, c.Size, c.CSize)
		}
		total += c.Size
	}
	if total != f.Size {
		return rejectf("file %q: chunks add up to %d bytes, file size is %d", f.Path, total, f.Size)
	}
	return nil
}

func (m *Manifest) validateProbe() error {
	if m.Probe == nil {
		return nil
	}
	names := []string{m.Probe.Input, m.Probe.Expected}
	if m.Probe.Tolerances != "" { // optional
		names = append(names, m.Probe.Tolerances)
	}
	for _, p := range names {
		if !slices.ContainsFunc(m.Files, func(f File) bool { return f.Path == p }) {
			return rejectf("probe file %q is not among the manifest's files", p)
		}
	}
	if m.Probe.Tolerance < 0 {
		return rejectf("probe tolerance %g is negative", m.Probe.Tolerance)
	}
	return nil
}

// Lookup returns the file entry for path p.
func (m *Manifest) Lookup(p string) (File, bool) {
	i := slices.IndexFunc(m.Files, func(f File) bool { return f.Path == p })
	if i < 0 {
		return File{}, false
	}
	return m.Files[i], true
}

// TotalSize is the sum of all file sizes.
func (m *Manifest) TotalSize() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// HexDigest returns the lower-case hex form of a raw digest.
func HexDigest(sum []byte) string { return hex.EncodeToString(sum) }

// SameContent reports whether a and b describe the same model tree: the same
// model, version and files (path, size, mode, sha256), whatever their chunking,
// signature or creation time.
func SameContent(a, b *Manifest) bool {
	if a.Model != b.Model || a.Version != b.Version || len(a.Files) != len(b.Files) {
		return false
	}
	for _, fa := range a.Files {
		fb, ok := b.Lookup(fa.Path)
		if !ok || fa.Size != fb.Size || fa.Mode != fb.Mode || fa.SHA256 != fb.SHA256 {
			return false
		}
	}
	return true
}
