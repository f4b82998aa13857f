package chunkindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

// A file of one chunk, or an empty one, has the section the manifest alone
// derives, byte for byte what WriteIndex writes; a file of two chunks, or a
// pin that says otherwise, derives nothing.
func TestDerivedSectionIsWhatWriteIndexWrites(t *testing.T) {
	data := []byte(`{"layers": 4}`)
	sum := sha256.Sum256(data)
	one := []Entry{{Sum: sum, Size: uint32(len(data))}}
	two := entries(2, 9)
	files := [][]Entry{one, nil, two}
	var buf bytes.Buffer
	if err := WriteIndex(&buf, files); err != nil {
		t.Fatal(err)
	}
	pins := Sections(files)
	empty := sha256.Sum256(nil)
	manifest := []verify.File{
		{Path: "config.json", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Index: &pins[0]},
		{Path: "empty", Size: 0, SHA256: hex.EncodeToString(empty[:]), Index: &pins[1]},
		{Path: "two.bin", Size: 2 << 16, SHA256: hex.EncodeToString(sum[:]), Index: &pins[2]},
	}
	off := int64(HeaderSize)
	for i, f := range manifest[:2] {
		got := DerivedSection(f)
		want := buf.Bytes()[off : off+SectionSize(int64(len(files[i])))]
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: derived %x, the index holds %x", f.Path, got, want)
		}
		off += int64(len(want))
	}
	if got := DerivedSection(manifest[2]); got != nil {
		t.Fatalf("a file of two chunks derived %x", got)
	}
	other := manifest[0]
	other.Index = &verify.FileIndex{Chunks: 1, SHA256: pins[2].SHA256}
	if got := DerivedSection(other); got != nil {
		t.Fatalf("a pin other than the derived section's derived %x", got)
	}
}
