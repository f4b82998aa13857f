package nginxtest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestServesRangesAndLogsThem(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f.bin"), []byte("0123456789"), 0o644)
	s := Start(t, root)
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/f.bin", nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != "234" || resp.Header.Get("Content-Range") != "bytes 2-4/10" {
		t.Fatalf("range answer: %s %q %q", resp.Status, b, resp.Header.Get("Content-Range"))
	}
	if _, err := http.Get(s.URL + "/missing"); err != nil {
		t.Fatal(err)
	}
	got := s.Requests()
	if len(got) != 2 || got[0].Range != "bytes=2-4" || got[0].Status != 206 || got[0].Bytes != 3 || got[1].Status != 404 || got[1].Range != "" {
		t.Fatalf("access log: %+v", got)
	}
}
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
	got := s.Requests()
	if len(got) != 2 || got[0].Path != "/m.json" || got[0].UserAgent != "probe/1" || got[0].Status != 200 ||
		got[1].Path != "/missing" || got[1].UserAgent != "probe/1" || got[1].Status != 404 {
		t.Fatalf("access log %+v, want /m.json 200 and /missing 404, both from probe/1", got)
	}
}
