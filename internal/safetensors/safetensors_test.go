package safetensors

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestMarshalThenParseGivesBackTensorsAndMetadata(t *testing.T) {
	in := map[string]Tensor{
		"w": F32([]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		"b": F32([]int{2}, []float32{-1.5, 0.25}),
	}
	b, err := Marshal(map[string]string{"version": "v1"}, in)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(b); n%8 != 0 {
		t.Errorf("header length %d is not padded to 8", n)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["version"] != "v1" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	w, shape, err := f.Float32("w")
	if err != nil || !slices.Equal(w, []float32{1, 2, 3, 4, 5, 6}) || !slices.Equal(shape, []int{2, 3}) {
		t.Errorf("w = %v %v %v", w, shape, err)
	}
	again, _ := Marshal(map[string]string{"version": "v1"}, in)
	if !slices.Equal(b, again) {
		t.Error("Marshal is not deterministic")
	}
}

func TestParseRejectsDamagedFiles(t *testing.T) {
	good, _ := Marshal(nil, map[string]Tensor{"a": F32([]int{2}, []float32{1, 2}), "b": F32([]int{1}, []float32{3})})
	header := func(h string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, 8)...)
	}
	cases := map[string][]byte{
		"short":           good[:5],
		"truncated data":  good[:len(good)-1],
		"huge header":     binary.LittleEndian.AppendUint64(nil, 1<<40),
		"not json":        header("{nope"),
		"unknown dtype":   header(`{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}`),
		"size mismatch":   header(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`),
		"out of range":    header(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`),
		"negative dim":    header(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`),
		"overlap":         header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`),
		"bad metadata":    header(`{"__metadata__":{"k":1}}`),
		"reversed offset": header(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := Marshal(map[string]string{"k": "v"}, map[string]Tensor{"a": F32([]int{2}, []float32{1, 2})})
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		for name := range file.Tensors {
			file.Float32(name) // must never read out of bounds
		}
	})
}
