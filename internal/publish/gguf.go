package publish

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
)

// GGUF (llama.cpp's format, versions 2 and 3): a header of metadata key/values
// and tensor infos, then the data section, which starts at the first multiple
// of general.alignment (32 by default) after the header; each tensor's offset
// is relative to that start. Only what the cut points need is kept: the
// offsets and sizes of the tensors, never the metadata values.
//
// Bounds against a hostile or broken file: the header is read through a limit
// (ggufMaxHeader: real headers, vocabulary arrays included, are a few MiB to
// tens of MiB), counts are checked against it before a loop runs, values are
// skipped without being allocated, and keys and names are bounded.
const (
	ggufMagic        = "GGUF"
	ggufMaxHeader    = 256 << 20
	ggufMaxTensors   = 1 << 20
	ggufMaxName      = 64 << 10
	ggufMaxDims      = 8
	ggufMaxNesting   = 4
	ggufDefaultAlign = 32
)

// GGUF metadata value types.
const (
	ggufUint8 = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
)

// ggufScalarSize is the encoded size of each fixed-size value type.
var ggufScalarSize = map[uint32]int64{
	ggufUint8: 1, ggufInt8: 1, ggufBool: 1, ggufUint16: 2, ggufInt16: 2,
	ggufUint32: 4, ggufInt32: 4, ggufFloat32: 4, ggufUint64: 8, ggufInt64: 8, ggufFloat64: 8,
}

// ggmlBlock is, per ggml tensor type, the elements of one block and its bytes
// (ggml's type_traits). A type missing here still gets its start cut; its end
// is then where the next tensor starts, a few padding bytes later at most.
var ggmlBlock = map[uint32][2]int64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24}, 8: {32, 34}, 9: {32, 36},
	10: {256, 84}, 11: {256, 110}, 12: {256, 144}, 13: {256, 176}, 14: {256, 210}, 15: {256, 292},
	16: {256, 66}, 17: {256, 74}, 18: {256, 98}, 19: {256, 50}, 20: {32, 18}, 21: {256, 110},
	22: {256, 82}, 23: {256, 136}, 24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8}, 28: {1, 8},
	29: {256, 56}, 30: {1, 2}, 34: {256, 54}, 35: {256, 66},
}

var errGGUF = errors.New("not a GGUF header this publisher understands")

// ggufTensor is one tensor's data, relative to the data section's start;
// size is -1 when its type is unknown.
type ggufTensor struct{ offset, size int64 }

// ggufReader reads the header, counting bytes so the data section's start is known.
type ggufReader struct {
	r   *bufio.Reader
	n   int64 // bytes consumed
	buf [8]byte
}

func (g *ggufReader) read(n int) ([]byte, error) {
	if _, err := io.ReadFull(g.r, g.buf[:n]); err != nil {
		return nil, err
	}
	g.n += int64(n)
	return g.buf[:n], nil
}

func (g *ggufReader) u32() (uint32, error) {
	b, err := g.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (g *ggufReader) u64() (uint64, error) {
	b, err := g.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// skip discards n bytes, refusing a length that would run past the header bound.
func (g *ggufReader) skip(n uint64) error {
	if n > uint64(ggufMaxHeader-g.n) {
		return errGGUF
	}
	m, err := g.r.Discard(int(n))
	g.n += int64(m)
	return err
}

// str reads a string; keep says whether to return it (keys we look at) or
// only skip it (values, names).
func (g *ggufReader) str(keep bool) (string, error) {
	n, err := g.u64()
	if err != nil {
		return "", err
	}
	if !keep {
		return "", g.skip(n)
	}
	if n > ggufMaxName {
		return "", errGGUF
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(g.r, b); err != nil {
		return "", err
	}
	g.n += int64(n)
	return string(b), nil
}

// value skips one value of type typ; for general.alignment the caller reads
// it instead.
func (g *ggufReader) value(typ uint32, depth int) error {
	if n, ok := ggufScalarSize[typ]; ok {
		return g.skip(uint64(n))
	}
	switch typ {
	case ggufString:
		_, err := g.str(false)
		return err
	case ggufArray:
		return g.array(depth)
	}
	return errGGUF
}

func (g *ggufReader) array(depth int) error {
	if depth >= ggufMaxNesting {
		return errGGUF
	}
	elem, err := g.u32()
	if err != nil {
		return err
	}
	count, err := g.u64()
	if err != nil {
		return err
	}
	if n, ok := ggufScalarSize[elem]; ok {
		hi, lo := bits.Mul64(count, uint64(n))
		if hi != 0 {
			return errGGUF
		}
		return g.skip(lo)
	}
	// Strings and nested arrays take at least 8 bytes each: a count past what
	// the header bound can hold is refused before the loop.
	if count > uint64(ggufMaxHeader-g.n)/8 {
		return errGGUF
	}
	for range count {
		if err := g.value(elem, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// ggufCuts returns the file offsets where the tensors of a GGUF file begin and
// end (and where its data section begins). A header that does not parse gives
// none: cuts are an optimisation, never a reason to refuse a file.
func ggufCuts(r io.Reader, fileSize int64) []int64 {
	start, tensors, err := parseGGUF(r)
	if err != nil {
		return nil
	}
	cuts := []int64{start}
	for _, t := range tensors {
		cuts = append(cuts, start+t.offset)
		if t.size >= 0 {
			cuts = append(cuts, start+t.offset+t.size)
		}
	}
	// A cut past the end would mean a header that lies; it changes nothing
	// (the chunker never reaches it), but keep the list honest.
	out := cuts[:0]
	for _, c := range cuts {
		if c > 0 && c < fileSize {
			out = append(out, c)
		}
	}
	return out
}

// parseGGUF reads a GGUF header and returns the data section's offset in the
// file and each tensor's data relative to it.
func parseGGUF(r io.Reader) (int64, []ggufTensor, error) {
	g := &ggufReader{r: bufio.NewReaderSize(io.LimitReader(r, ggufMaxHeader), 64<<10)}
	magic, err := g.read(4)
	if err != nil || string(magic) != ggufMagic {
		return 0, nil, errGGUF
	}
	version, err := g.u32()
	if err != nil || (version != 2 && version != 3) {
		return 0, nil, errGGUF // v1 used 32-bit counts and lengths; it predates every model in use
	}
	nTensors, err := g.u64()
	if err != nil || nTensors > ggufMaxTensors {
		return 0, nil, errGGUF
	}
	nKV, err := g.u64()
	if err != nil || nKV > uint64(ggufMaxHeader)/12 { // a key/value takes at least 12 bytes
		return 0, nil, errGGUF
	}
	align, err := g.metadata(nKV)
	if err != nil {
		return 0, nil, err
	}
	tensors, err := g.tensorInfos(nTensors, align)
	if err != nil {
		return 0, nil, err
	}
	start := (g.n + align - 1) / align * align
	return start, tensors, nil
}

// metadata skips every key/value and returns general.alignment (32 when absent).
func (g *ggufReader) metadata(n uint64) (int64, error) {
	align := int64(ggufDefaultAlign)
	for range n {
		key, err := g.str(true)
		if err != nil {
			return 0, errGGUF
		}
		typ, err := g.u32()
		if err != nil {
			return 0, errGGUF
		}
		if key == "general.alignment" && typ == ggufUint32 {
			a, err := g.u32()
			if err != nil || a == 0 || a&(a-1) != 0 || a > 1<<20 {
				return 0, errGGUF // llama.cpp refuses an alignment that is not a power of two
			}
			align = int64(a)
			continue
		}
		if err := g.value(typ, 0); err != nil {
			return 0, errGGUF
		}
	}
	return align, nil
}

// tensorInfos reads each tensor's name, shape, type and offset. The slice
// grows as tensors are read, so a count the file cannot back allocates nothing.
func (g *ggufReader) tensorInfos(n uint64, align int64) ([]ggufTensor, error) {
	var out []ggufTensor
	for range n {
		if _, err := g.str(false); err != nil {
			return nil, errGGUF
		}
		nDims, err := g.u32()
		if err != nil || nDims > ggufMaxDims {
			return nil, errGGUF
		}
		elems := int64(1)
		for range nDims {
			d, err := g.u64()
			if err != nil || d > 1<<40 {
				return nil, errGGUF
			}
			hi, lo := bits.Mul64(uint64(elems), d)
			if hi != 0 || lo > 1<<50 {
				return nil, errGGUF
			}
			elems = int64(lo)
		}
		typ, err := g.u32()
		if err != nil {
			return nil, errGGUF
		}
		off, err := g.u64()
		if err != nil || off > 1<<50 || int64(off)%align != 0 {
			return nil, errGGUF
		}
		t := ggufTensor{offset: int64(off), size: -1}
		if b, ok := ggmlBlock[typ]; ok && elems%b[0] == 0 {
			t.size = elems / b[0] * b[1]
		}
		out = append(out, t)
	}
	return out, nil
}
