package publish

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"strings"
)

// maxHeader bounds a safetensors header read for cut points; the format's own
// limit is 100 MB, real headers are kilobytes to a few megabytes.
const maxHeader = 100 << 20

// tensorCuts returns the file offsets where the tensors of a .safetensors file
// begin and end, to be forced chunk boundaries: a changed tensor then costs its
// own bytes, not also the chunks it shares with unchanged neighbours. Any other
// file, or one whose header does not parse, gets none: the cuts are an
// optimisation, never a reason to refuse a file.
func tensorCuts(name string) []int64 {
	if !strings.HasSuffix(name, ".safetensors") {
		return nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil || n > maxHeader {
		return nil
	}
	var header map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(f, int64(n))).Decode(&header); err != nil {
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
