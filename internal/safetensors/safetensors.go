// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the raw little-endian tensor data.
//
// Invariant: a File returned by Parse has been checked whole — every tensor's
// byte range lies inside the data section, matches its dtype and shape, and no
// two tensors overlap — so accessors never read out of bounds.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

// MaxHeaderSize bounds the JSON header before it is read, so a damaged file
// cannot make the reader allocate without limit.
const MaxHeaderSize = 16 << 20

// ErrFormat marks a file that is not valid safetensors.
var ErrFormat = errors.New("not a valid safetensors file")

// dtypeSize is the byte size of one element of each dtype this package knows.
var dtypeSize = map[string]int{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}

// Tensor is one named array. Data holds its raw little-endian bytes.
type Tensor struct {
	DType string
	Shape []int
	Data  []byte
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

type headerEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// Float32 returns the tensor named name as float32 values with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("tensor %q: not in the file", name)
	}
	if t.DType != "F32" {
		return nil, nil, fmt.Errorf("tensor %q: dtype %s, want F32", name, t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, t.Shape, nil
}

// F32 builds a float32 tensor of the given shape; it panics when the number
// of values does not match the shape, which is a programming error.
func F32(shape []int, values []float32) Tensor {
	if elements(shape) != int64(len(values)) {
		panic(fmt.Sprintf("safetensors.F32: %d values for shape %v", len(values), shape))
	}
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{DType: "F32", Shape: shape, Data: data}
}

func elements(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// Parse decodes and checks a whole safetensors file held in memory. The
// returned tensors share b's memory.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the 8-byte header length", ErrFormat, len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("%w: header length %d does not fit the %d-byte file", ErrFormat, n, len(b))
	}
	header, data := b[8:8+n], b[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object: %v", ErrFormat, err)
	}
	f := &File{Tensors: make(map[string]Tensor, len(raw))}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &f.Metadata); err != nil {
			return nil, fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrFormat, err)
		}
		delete(raw, "__metadata__")
	}
	entries := make(map[string]headerEntry, len(raw))
	for name, r := range raw {
		var e headerEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrFormat, name, err)
		}
		entries[name] = e
	}
	if err := checkLayout(entries, int64(len(data))); err != nil {
		return nil, err
	}
	for name, e := range entries {
		f.Tensors[name] = Tensor{DType: e.DType, Shape: e.Shape, Data: data[e.Offsets[0]:e.Offsets[1]]}
	}
	return f, nil
}

// checkLayout verifies each tensor's range against its dtype and shape and
// that the ranges tile the data section without overlap.
func checkLayout(entries map[string]headerEntry, dataLen int64) error {
	names := make([]string, 0, len(entries))
	for name, e := range entries {
		size, ok := dtypeSize[e.DType]
		if !ok {
			return fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrFormat, name, e.DType)
		}
		for _, d := range e.Shape {
			if d < 0 || d > math.MaxInt32 {
				return fmt.Errorf("%w: tensor %q: bad dimension %d", ErrFormat, name, d)
			}
		}
		begin, end := e.Offsets[0], e.Offsets[1]
		if begin < 0 || end < begin || end > dataLen {
			return fmt.Errorf("%w: tensor %q: range [%d,%d) outside the %d data bytes", ErrFormat, name, begin, end, dataLen)
		}
		if want := elements(e.Shape) * int64(size); end-begin != want {
			return fmt.Errorf("%w: tensor %q: %d bytes for shape %v of %s, want %d", ErrFormat, name, end-begin, e.Shape, e.DType, want)
		}
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return entries[names[i]].Offsets[0] < entries[names[j]].Offsets[0] })
	for i := 1; i < len(names); i++ {
		if entries[names[i]].Offsets[0] < entries[names[i-1]].Offsets[1] {
			return fmt.Errorf("%w: tensors %q and %q overlap", ErrFormat, names[i-1], names[i])
		}
	}
	return nil
}
