package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
)

// A minimal GGUF v3 writer (llama.cpp's format, docs: ggml/docs/gguf.md) for
// the delta bench: header, metadata key/values (general.alignment among them),
// tensor infos, then the tensor data, each tensor at an offset that is a
// multiple of the alignment from the aligned start of the data section.

const (
	ggufMagic   = 0x46554747 // "GGUF" little-endian
	ggufVersion = 3

	ggufUint32 = 4
	ggufString = 8
	ggufArray  = 9

	ggmlTypeF32 = 0
)

// ggufKV is one metadata pair: a uint32, a string or an array of strings.
type ggufKV struct {
	key     string
	u32     uint32
	str     string
	strings []string
	kind    uint32
}

// ggufTensor is one F32 tensor of size bytes drawn from stream seed.
type ggufTensor struct {
	name string
	size int64
	seed uint64
}

type ggufWriter struct{ bytes.Buffer }

func (w *ggufWriter) u32(v uint32) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *ggufWriter) u64(v uint64) { binary.Write(&w.Buffer, binary.LittleEndian, v) }
func (w *ggufWriter) str(s string) { w.u64(uint64(len(s))); w.WriteString(s) }

// writeGGUF writes a GGUF v3 file: kv (general.alignment is added, set to
// align) and tensors, and returns the offset of the data section.
func writeGGUF(name string, align uint32, kv []ggufKV, tensors []ggufTensor) (int64, error) {
	kv = append([]ggufKV{{key: "general.alignment", kind: ggufUint32, u32: align}}, kv...)
	var w ggufWriter
	w.u32(ggufMagic)
	w.u32(ggufVersion)
	w.u64(uint64(len(tensors)))
	w.u64(uint64(len(kv)))
	for _, p := range kv {
		w.str(p.key)
		w.u32(p.kind)
		switch p.kind {
		case ggufUint32:
			w.u32(p.u32)
		case ggufString:
			w.str(p.str)
		case ggufArray:
			w.u32(ggufString)
			w.u64(uint64(len(p.strings)))
			for _, s := range p.strings {
				w.str(s)
			}
		default:
			return 0, fmt.Errorf("gguf: key %s: unsupported type %d", p.key, p.kind)
		}
	}
	offsets := make([]int64, len(tensors))
	var off int64
	for i, t := range tensors {
		if t.size%4 != 0 {
			return 0, fmt.Errorf("gguf: tensor %s: %d bytes is not F32", t.name, t.size)
		}
		offsets[i] = off
		w.str(t.name)
		w.u32(1)
		w.u64(uint64(t.size / 4))
		w.u32(ggmlTypeF32)
		w.u64(uint64(off))
		off = alignUp(off+t.size, int64(align))
	}
	data := alignUp(int64(w.Len()), int64(align))
	w.Write(make([]byte, data-int64(w.Len())))
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	if _, err := f.Write(w.Bytes()); err != nil {
		f.Close()
		return 0, err
	}
	for i, t := range tensors {
		if err := writeRandomAt(f, data+offsets[i], t.size, t.seed); err != nil {
			f.Close()
			return 0, err
		}
	}
	// The padding after the last tensor, so the file ends aligned.
	if err := f.Truncate(data + off); err != nil {
		f.Close()
		return 0, err
	}
	return data, f.Close()
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// stTensor is one safetensors F32 tensor of size bytes drawn from stream seed.
type stTensor struct {
	name string
	size int64
	seed uint64
}

// writeSafetensors writes a safetensors file with the tensors in the order
// given, random (incompressible) data, and returns where the data starts.
func writeSafetensors(name string, tensors []stTensor) (int64, error) {
	h := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range tensors {
		h[t.name] = map[string]any{"dtype": "F32", "shape": []int64{t.size / 4}, "data_offsets": []int64{off, off + t.size}}
		off += t.size
	}
	js, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	f, err := os.Create(name)
	if err != nil {
		return 0, err
	}
	var head [8]byte
	binary.LittleEndian.PutUint64(head[:], uint64(len(js)))
	if _, err := f.Write(append(head[:], js...)); err != nil {
		f.Close()
		return 0, err
	}
	base := int64(8 + len(js))
	off = 0
	for _, t := range tensors {
		if err := writeRandomAt(f, base+off, t.size, t.seed); err != nil {
			f.Close()
			return 0, err
		}
		off += t.size
	}
	return base, f.Close()
}
