package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
)

// Marshal encodes tensors and metadata as a safetensors file. Tensors are laid
// out in name order and the header is padded with spaces to a multiple of 8
// bytes, so the same input always gives the same bytes and the data is aligned.
func Marshal(metadata map[string]string, tensors map[string]Tensor) ([]byte, error) {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if name == "__metadata__" {
			return nil, fmt.Errorf("tensor name %q is reserved", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var data bytes.Buffer
	for _, name := range names {
		t := tensors[name]
		size, ok := dtypeSize[t.DType]
		if !ok || int64(len(t.Data)) != elements(t.Shape)*int64(size) {
			return nil, fmt.Errorf("tensor %q: %d bytes do not fit dtype %q and shape %v", name, len(t.Data), t.DType, t.Shape)
		}
		begin := int64(data.Len())
		data.Write(t.Data)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[name] = headerEntry{DType: t.DType, Shape: shape, Offsets: [2]int64{begin, int64(data.Len())}}
	}
	h, err := json.Marshal(header) // map keys are sorted: deterministic
	if err != nil {
		return nil, fmt.Errorf("encode safetensors header: %w", err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+data.Len())
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	return append(out, data.Bytes()...), nil
}
