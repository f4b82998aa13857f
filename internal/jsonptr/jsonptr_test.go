package jsonptr

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestGet(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(`{"version":"v2","meta":{"model/version":"v3","~k":1},
		"outputs":[{"name":"y","data":[0.5,1.5]}],"":"empty key"}`), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ptr  string
		want any // nil: not found
	}{
		{"/version", "v2"},
		{"/meta/model~1version", "v3"},
		{"/meta/~0k", 1.0},
		{"/outputs/0/name", "y"},
		{"/outputs/0/data/1", 1.5},
		{"/", "empty key"},
		{"/outputs/1", nil},
		{"/outputs/01", nil},
		{"/outputs/-", nil},
		{"/version/0", nil},
		{"/missing", nil},
	}
	for _, tt := range tests {
		p, err := Parse(tt.ptr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.ptr, err)
		}
		got, ok := p.Get(doc)
		if ok != (tt.want != nil) || (ok && got != tt.want) {
			t.Errorf("Get(%q) = %v, %v; want %v", tt.ptr, got, ok, tt.want)
		}
	}
	if whole, ok := (Pointer{}).Get(doc); !ok || whole == nil {
		t.Errorf(`the empty pointer must name the whole document`)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"version", "/a~2", "/a~", "#/a"} {
		if _, err := Parse(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", s, err)
		}
	}
	if p, err := Parse("/a~1b/" + Escape("c/~d")); err != nil || p.tokens[0] != "a/b" || p.tokens[1] != "c/~d" {
		t.Errorf("escapes: %+v %v", p, err)
	}
}
