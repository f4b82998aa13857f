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
		// A name the staging filesystem would refuse halfway through an install.
		{"d/" + strings.Repeat("a", 256), "more than the 255"},
		{strings.Repeat("a", 255) + "/" + strings.Repeat("b", 255), ""},
		// Names that display as something they are not.
		{"model\u202egpj.exe", "U+202E"}, // right-to-left override
		{"a\u2066b\u2069", "U+2066"},     // left-to-right isolate
		{"x\u200fy", "U+200F"},           // right-to-left mark
		{"zero\u200bwidth", "U+200B"},    // zero-width space
		{"bom\ufeff", "U+FEFF"},
		{"line\u2028sep", "U+2028"},
		{"tag\U000E0041", "U+E0041"},
		{"c1\u0085", "control"}, // NEL, a C1 control
		{"bad\xffutf8", "UTF-8"},
		{"\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", ""}, // Persian with a zero-width non-joiner
		{"caf\u00e9/\u6a21\u578b.bin", ""},
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
