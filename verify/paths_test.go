package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		want string // "" = accepted; otherwise a part of the error
	}{
		{"weights.safetensors", ""},
		{"probe/input.json", ""},
		{"a/b/c/d.bin", ""},
		{"..hidden", ""},
		{"", "empty path"},
		{"/etc/passwd", "absolute"},
		{"../x", "'..'"},
		{"a/../../x", "'..'"},
		{"a/..", "'..'"},
		{"./a", "clean form"},
		{"a//b", "clean form"},
		{"a/", "clean form"},
		{"a\\b", "backslash"},
		{"a\x00b", "control"},
		{"a\nb", "control"},
		{".modelslot/manifest.json", "reserved"},
		{".modelslot", "reserved"},
		{strings.Repeat("a", 1025), "longer than"},
	}
	for _, tt := range tests {
		err := CheckPath(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPath(%q) = %v, want ok", tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckPath(%q) = %v, want an error about %q", tt.path, err, tt.want)
		case err != nil && !errors.Is(err, ErrRejected):
			t.Errorf("CheckPath(%q) error does not wrap ErrRejected", tt.path)
		}
	}
}

func TestCheckTree(t *testing.T) {
	if err := checkTree([]string{"a/b", "a/c", "b"}); err != nil {
		t.Fatalf("valid tree refused: %v", err)
	}
	if err := checkTree([]string{"a", "b", "a"}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("duplicate accepted: %v", err)
	}
	if err := checkTree([]string{"a/b/c", "a/b"}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("file used as directory accepted: %v", err)
	}
}
