package verify

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzKey is the one key the fuzz targets trust; its seed is fixed so that the
// corpus under testdata/fuzz holds envelopes it verifies.
func fuzzKey() *PrivateKey {
	k, _ := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{42}, 32)))
	return k
}

// FuzzOpenManifest feeds arbitrary bytes to the device's whole parsing path for a
// signed manifest. Whatever the input: no panic, every error is a rejection, and
// an accepted manifest is valid and survives a round trip.
func FuzzOpenManifest(f *testing.F) {
	k := fuzzKey()
	good, _ := SignManifest(validManifest(), k)
	f.Add(good)
	f.Add([]byte(`{"payloadType":"application/vnd.modelslot.manifest+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte(`{}`))
	trusted := NewKeyring(k.Public())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := OpenManifest(data, trusted)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error is not a rejection: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted manifest does not validate: %v", err)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseManifest(b); err != nil {
			t.Fatalf("accepted manifest does not round-trip: %v", err)
		}
	})
}

// FuzzParseManifest fuzzes the manifest parser alone, which a signature would
// otherwise shield from most inputs.
func FuzzParseManifest(f *testing.F) {
	b, _ := validManifest().Marshal()
	f.Add(b)
	f.Add([]byte(`{"schema":1,"model":"demo","version":"v1","files":[{"path":"a","size":3,"mode":"0644","sha256":"` + digestA + `","chunks":[{"sha256":"` + digestA + `","size":3,"csize":9}]}]}`))
	inline, _ := inlineManifest([]byte(`{"a":1}`)).Marshal()
	f.Add(inline)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error is not a rejection: %v", err)
			}
			return
		}
		for _, file := range m.Files {
			if CheckPath(file.Path) != nil || file.Size < 0 {
				t.Fatalf("accepted an unsafe file entry %+v", file)
			}
			if b := file.Inline(); file.Data != "" && (int64(len(b)) != file.Size || sumHex(b) != file.SHA256) {
				t.Fatalf("accepted inline data that is not the file %+v", file)
			}
		}
	})
}

// FuzzCheckPath checks that every accepted path is one that cannot leave the
// slot: relative, clean, without "..", and outside the reserved directory.
func FuzzCheckPath(f *testing.F) {
	for _, p := range []string{"weights.bin", "a/b/c", "../x", "a/../b", "/abs", ".modelslot/x", "a//b", "a\\b", "..a", "a/.."} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckPath(p) != nil {
			return
		}
		for _, elem := range strings.Split(p, "/") {
			if elem == ".." || elem == "." || elem == "" {
				t.Fatalf("accepted %q with element %q", p, elem)
			}
		}
		if strings.HasPrefix(p, "/") || strings.HasPrefix(p, MetaDir+"/") || p == MetaDir || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("accepted unsafe path %q", p)
		}
	})
}
