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
