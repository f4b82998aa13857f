package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// inlineManifest is a schema-2 manifest of files with the given contents,
// each carrying its bytes inline, one chunk a file.
func inlineManifest(contents ...[]byte) *Manifest {
	m := &Manifest{Schema: SchemaIndexed, Model: "demo", Version: "v1", Sequence: 1}
	for i, b := range contents {
		sum := sha256.Sum256(b)
		m.Files = append(m.Files, File{Path: fmt.Sprintf("f%d.json", i), Size: int64(len(b)), Mode: 0o644,
			SHA256: hex.EncodeToString(sum[:]), Data: base64.StdEncoding.EncodeToString(b)})
	}
	m.Index = &IndexRef{SHA256: digestA, Size: 20 + 40*int64(len(contents)), Chunks: int64(len(contents))}
	return m
}

// signRaw signs m as a publisher that skips validation would.
func signRaw(t *testing.T, m *Manifest, k *PrivateKey) []byte {
	t.Helper()
	payload, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(PayloadManifest, payload, k)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestSignedManifestWithInlineDataOpens(t *testing.T) {
	k := testKey(t, 1)
	m := inlineManifest([]byte(`{"layers": 4}`), nil, bytes.Repeat([]byte("x"), InlineMax))
	m.Files[1].Data = "" // an empty file carries nothing
	got, err := OpenManifest(signRaw(t, m, k), NewKeyring(k.Public()))
	if err != nil {
		t.Fatalf("a manifest with valid inline data is refused: %v", err)
	}
	if b := got.Files[0].Inline(); string(b) != `{"layers": 4}` {
		t.Fatalf("Inline() = %q", b)
	}
	if got.Files[1].Inline() != nil || len(got.Files[2].Inline()) != InlineMax {
		t.Fatalf("Inline() of the empty and the largest file: %q, %d bytes", got.Files[1].Inline(), len(got.Files[2].Inline()))
	}
}

func TestSignedManifestWithBadInlineDataIsRejected(t *testing.T) {
	k := testKey(t, 1)
	big := bytes.Repeat([]byte("y"), InlineMax+1)
	tests := []struct {
		name string
		m    func() *Manifest
		want string
	}{
		{"sha256 differs", func() *Manifest {
			m := inlineManifest([]byte(`{"a":1}`))
			m.Files[0].Data = base64.StdEncoding.EncodeToString([]byte(`{"a":2}`)) // same size
			return m
		}, `file "f0.json": its inline data has sha256`},
		{"size differs", func() *Manifest {
			m := inlineManifest([]byte(`{"a":1}`))
			m.Files[0].Data = base64.StdEncoding.EncodeToString([]byte(`{"a":1} `))
			return m
		}, `file "f0.json": its inline data has 8 bytes, the file 7`},
		{"file above InlineMax", func() *Manifest { return inlineManifest(big) }, `file "f0.json" carries its data inline, but has 4097 bytes`},
		{"over the budget", func() *Manifest {
			var files [][]byte
			for i := range InlineBudget/InlineMax + 1 {
				files = append(files, bytes.Repeat([]byte{byte(i)}, InlineMax))
			}
			return inlineManifest(files...)
		}, `file "f16.json": the manifest's inline data adds up to more than the 65536 bytes`},
		{"not base64", func() *Manifest {
			m := inlineManifest([]byte(`{"a":1}`))
			m.Files[0].Data = "!!!!"
			return m
		}, "not standard base64"},
		{"schema 1", func() *Manifest {
			m := inlineManifest([]byte(`{"a":1}`))
			m.Schema, m.Index = SchemaInline, nil
			return m
		}, "only schema 2 may"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenManifest(signRaw(t, tt.m(), k), NewKeyring(k.Public()))
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("OpenManifest = %v, want a rejection saying %q", err, tt.want)
			}
		})
	}
}
