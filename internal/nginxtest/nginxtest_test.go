package nginxtest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestServesTheDirectoryAndLogsEachRequest(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "m.json"), []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Start(t, root)
	for _, c := range []struct{ path, want string }{{"/m.json", `{"v":1}`}, {"/missing", ""}} {
		req, _ := http.NewRequest("GET", s.URL+c.path, nil)
		req.Header.Set("User-Agent", "probe/1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c.want != "" && (resp.StatusCode != 200 || string(b) != c.want || resp.Header.Get("Content-Type") != "application/json") {
			t.Fatalf("GET %s: %s %q %s", c.path, resp.Status, b, resp.Header.Get("Content-Type"))
		}
		if c.want == "" && resp.StatusCode != 404 {
			t.Fatalf("GET %s: %s, want 404", c.path, resp.Status)
		}
	}
	got := s.Requests(t)
	want := []Request{{"/m.json", "probe/1", "200"}, {"/missing", "probe/1", "404"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("access log %v, want %v", got, want)
	}
}
