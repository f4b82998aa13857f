package verify

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const digestA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func validManifest() *Manifest {
	return &Manifest{Schema: 1, Model: "demo", Version: "v1", Sequence: 3, Files: []File{
		{Path: "w.bin", Size: 4, Mode: 0o644, SHA256: digestA},
		{Path: "probe/input.json", Size: 2, Mode: 0o644, SHA256: digestA},
		{Path: "probe/expected.json", Size: 2, Mode: 0o644, SHA256: digestA},
	}, Probe: &Probe{Input: "probe/input.json", Expected: "probe/expected.json", Tolerance: 1e-4}}
}

func TestManifestRoundTrip(t *testing.T) {
	m := validManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"mode": "0644"`)) {
		t.Fatalf("mode is not written as an octal string:\n%s", b)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatalf("Parse(Marshal(m)): %v", err)
	}
	if !SameContent(m, got) || got.Sequence != 3 || got.Probe.Tolerance != 1e-4 {
		t.Fatalf("round trip changed the manifest: %+v", got)
	}
}

// indexed3 makes validManifest a schema-2 manifest of one chunk a file, each
// file pinning its index section: 20 header bytes, then 40 a file.
func indexed3(m *Manifest) {
	m.Schema = SchemaIndexed
	m.Index = &IndexRef{SHA256: digestA, Size: 20 + 3*40, Chunks: 3}
	for i := range m.Files {
		m.Files[i].Index = &FileIndex{Chunks: 1, SHA256: digestA}
	}
}

func TestManifestWithIndexSectionsIsValid(t *testing.T) {
	m := validManifest()
	indexed3(m)
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatalf("a manifest whose sections add up to its index is refused: %v", err)
	}
	if got.Files[2].Index == nil || *got.Files[2].Index != *m.Files[2].Index {
		t.Fatalf("the section did not survive a round trip: %+v", got.Files[2].Index)
	}
}

func TestIndexSegmentsRoundTrip(t *testing.T) {
	segs := []IndexSegment{{Chunks: 3, SHA256: [32]byte{1}}, {Chunks: 200, SHA256: [32]byte{2, 3}}}
	fi := &FileIndex{Chunks: 203, Segments: EncodeSegments(segs)}
	got, err := fi.SegmentList()
	if err != nil || len(got) != 2 || got[0] != segs[0] || got[1] != segs[1] {
		t.Fatalf("SegmentList(EncodeSegments(%v)) = %v, %v", segs, got, err)
	}
	if got, err := (&FileIndex{Chunks: 5}).SegmentList(); got != nil || err != nil {
		t.Fatalf("a file of one segment: %v, %v", got, err)
	}
}

func TestManifestRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Manifest)
		want   string
	}{
		{"newer schema", func(m *Manifest) { m.Schema = SchemaVersion + 1 }, "upgrade modelslot"},
		{"schema 2 without an index", func(m *Manifest) { m.Schema = SchemaIndexed }, "no chunk index"},
		{"schema 1 with an index", func(m *Manifest) { m.Index = &IndexRef{SHA256: strings.Repeat("a", 64), Size: 56, Chunks: 1} }, "only schema 2"},
		{"index and inline chunks", func(m *Manifest) {
			m.Schema = SchemaIndexed
			m.Index = &IndexRef{SHA256: strings.Repeat("a", 64), Size: 56, Chunks: 1}
			m.Files[0].Chunks = []Chunk{{SHA256: m.Files[0].SHA256, Size: m.Files[0].Size, CSize: 1}}
		}, "belong in its index"},
		{"index too small for its chunks", func(m *Manifest) {
			m.Schema = SchemaIndexed
			m.Index = &IndexRef{SHA256: strings.Repeat("a", 64), Size: 40, Chunks: 2}
		}, "36 a chunk"},
		{"index section on one file only", func(m *Manifest) {
			indexed3(m)
			m.Files[1].Index = nil
		}, "2 of 3 files pin an index section"},
		{"index sections that do not add up", func(m *Manifest) {
			indexed3(m)
			m.Files[2].Index.Chunks = 2
		}, "add up to 4 chunks in 176 bytes"},
		{"index section with a bad digest", func(m *Manifest) {
			indexed3(m)
			m.Files[0].Index.SHA256 = "xyz"
		}, "index section"},
		{"index segments that do not add up", func(m *Manifest) {
			indexed3(m)
			m.Files[0].Index.Segments = EncodeSegments([]IndexSegment{{Chunks: 1}, {Chunks: 1}})
		}, "segments add up to 2 chunks, the section has 1"},
		{"an empty index segment", func(m *Manifest) {
			indexed3(m)
			m.Files[0].Index.Segments = EncodeSegments([]IndexSegment{{Chunks: 1}, {Chunks: 0}})
		}, "segment 1 is empty"},
		{"index segments not base64", func(m *Manifest) {
			indexed3(m)
			m.Files[0].Index.Segments = "!!"
		}, "not base64"},
		{"no schema", func(m *Manifest) { m.Schema = 0 }, "schema 0"},
		{"bad model name", func(m *Manifest) { m.Model = "../x" }, "model name"},
		{"empty version", func(m *Manifest) { m.Version = "" }, "version"},
		{"version with slash", func(m *Manifest) { m.Version = "v1/../x" }, "version"},
		{"traversal", func(m *Manifest) { m.Files[0].Path = "../../etc/shadow" }, "'..'"},
		{"negative size", func(m *Manifest) { m.Files[0].Size = -1 }, "negative size"},
		{"setuid", func(m *Manifest) { m.Files[0].Mode = 0o4755 }, "plain permission"},
		{"bad digest", func(m *Manifest) { m.Files[0].SHA256 = "xyz" }, "64 lower-case hex"},
		{"upper-case digest", func(m *Manifest) { m.Files[0].SHA256 = strings.ToUpper(digestA) }, "64 lower-case hex"},
		{"duplicate", func(m *Manifest) { m.Files[1].Path = "w.bin" }, "listed twice"},
		{"probe not shipped", func(m *Manifest) { m.Probe.Input = "nope.json" }, "probe file"},
		{"tolerances not shipped", func(m *Manifest) { m.Probe.Tolerances = "probe/tolerances.json" }, "probe file"},
		{"chunks do not add up", func(m *Manifest) {
			m.Files[0].Chunks = []Chunk{{SHA256: digestA, Size: 3, CSize: 3}}
		}, "chunks add up to 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validManifest()
			tt.change(m)
			b, _ := m.Marshal()
			_, err := ParseManifest(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrRejected) {
				t.Fatalf("Parse = %v, want a rejection about %q", err, tt.want)
			}
		})
	}
}

func TestParseRejectsMalformedInput(t *testing.T) {
	for name, data := range map[string][]byte{
		"truncated":     []byte(`{"schema":1,"model":"demo"`),
		"trailing data": []byte(`{"schema":1,"model":"demo","version":"v1","files":[]} {}`),
		"bad mode":      []byte(`{"schema":1,"model":"demo","version":"v1","files":[{"path":"a","size":1,"mode":"rwx","sha256":"` + digestA + `"}]}`),
		"oversized":     bytes.Repeat([]byte(" "), MaxManifestSize+1),
	} {
		if _, err := ParseManifest(data); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: Parse = %v, want ErrRejected", name, err)
		}
	}
}

func TestSameContent(t *testing.T) {
	a, b := validManifest(), validManifest()
	b.Sequence, b.Insecure = 9, true // not content
	if !SameContent(a, b) {
		t.Fatal("manifests differing only in metadata must be the same content")
	}
	b.Files[2].SHA256 = strings.Repeat("b", 64)
	if SameContent(a, b) {
		t.Fatal("a changed digest must make a different content")
	}
}

// Sequences are bounded so that every JSON reader keeps them exact and a
// manifest cannot make every later release a downgrade.
func TestManifestSequenceIsBounded(t *testing.T) {
	m := validManifest()
	m.Sequence = MaxSequence
	if err := m.Validate(); err != nil {
		t.Fatalf("sequence %d refused: %v", m.Sequence, err)
	}
	for _, seq := range []uint64{MaxSequence + 1, 1<<64 - 1} {
		m.Sequence = seq
		if err := m.Validate(); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "more than the") {
			t.Fatalf("sequence %d = %v, want a rejection", seq, err)
		}
	}
}
