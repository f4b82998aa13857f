package publish

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"strings"
)

// Forced cut points by file format. Content-defined chunking alone shares a
// chunk between a changed tensor and its unchanged neighbour; a cut at every
// tensor boundary makes a changed tensor cost its own bytes and nothing more.
// Every format is optional: a file that is not one, or whose header does not
// parse, gets plain content-defined chunks.
//
// To add a format: write a function that reads the file's header (bounded:
// the file may be hostile) and returns the file offsets where each tensor's
// data begins and ends, and add it to formats with how to recognise the file.
// docs/repository.md § Formats lists them.
var formats = []struct {
	name  string
	match func(name string, head []byte) bool
	cuts  func(r io.Reader, size int64) []int64
}{
	{"safetensors", func(name string, _ []byte) bool { return strings.HasSuffix(name, ".safetensors") }, safetensorsCuts},
	{"gguf", func(_ string, head []byte) bool { return bytes.HasPrefix(head, []byte(ggufMagic)) }, ggufCuts},
}

// tensorCuts returns the forced cut offsets of the file name, nil for a file
// of no known format.
func tensorCuts(name string) []int64 {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	for _, fm := range formats {
		if !fm.match(name, head[:n]) {
			continue
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil
		}
		return fm.cuts(f, fi.Size())
	}
	return nil
}

// maxHeader bounds a safetensors header read for cut points; the format's own
// limit is 100 MB, real headers are kilobytes to a few megabytes.
const maxHeader = 100 << 20

// safetensorsCuts returns the offsets where the data section and each tensor
// of a .safetensors file begin and end.
func safetensorsCuts(r io.Reader, _ int64) []int64 {
	var n uint64
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > maxHeader {
		return nil
	}
	var header map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(r, int64(n))).Decode(&header); err != nil {
		return nil
	}
	base := int64(8 + n)
	cuts := []int64{base}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var t struct {
			Offsets [2]int64 `json:"data_offsets"`
		}
		if json.Unmarshal(raw, &t) == nil {
			cuts = append(cuts, base+t.Offsets[0], base+t.Offsets[1])
		}
	}
	return cuts
}
