package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/demobench"
	"github.com/modelslot/modelslot/internal/testutil"
)

const models = "../../testdata/models"

// variantDevice is a Device whose slot b holds the named variant instead of v2.
func variantDevice(t *testing.T, variant string) *demobench.Device {
	t.Helper()
	dev, err := demobench.NewDevice(t.TempDir(), models)
	if err != nil {
		t.Fatal(err)
	}
	dev.B = filepath.Join(filepath.Dir(dev.A), variant)
	if err := demobench.FillSlot(filepath.Join(models, variant), dev.B, "v3-"+variant, 3); err != nil {
		t.Fatal(err)
	}
	return dev
}

func post(t *testing.T, url string, body []byte) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Post(url+"/v1/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

func TestCrashVariantFailsTheFirstLoadAndIsRefusedOnReload(t *testing.T) {
	dev := variantDevice(t, "crash")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	err := runServer(context.Background(), options{link: dev.B}, ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "failing on load") {
		t.Fatalf("first load of crash: %v", err)
	}
	url, stop := startServer(t, dev.Link)
	defer stop()
	demobench.Swap(dev.Link, dev.B)
	time.Sleep(300 * time.Millisecond)
	waitHealthy(t, url, "v1")
}

func TestWrongVariantIsNotSwappedInBecauseItFailsItsProbe(t *testing.T) {
	dev := variantDevice(t, "wrong")
	url, stop := startServer(t, dev.Link)
	defer stop()
	demobench.Swap(dev.Link, dev.B)
	time.Sleep(300 * time.Millisecond)
	if code, body, _ := post(t, url, dev.Input); code != 200 || !strings.Contains(body, `"version":"v1"`) {
		t.Fatalf("after a swap to the wrong model: %d %s", code, body)
	}
	// Started on it directly (a restart), it serves and its answers differ:
	// that is for the updater's probe to catch.
	url2, stop2 := startServer(t, dev.B)
	defer stop2()
	load := demobench.Load{Input: dev.Input, Expect: demobench.Expect{"v3-wrong": dev.Expect["v2"]}, Tolerance: 1e-4}
	_, body, _ := post(t, url2, dev.Input)
	if _, err := load.Check(body); err == nil {
		t.Fatalf("wrong variant answered v2's expected outputs: %s", body)
	}
}

func TestSlowVariantAnswersTenTimesOverTheLimit(t *testing.T) {
	dev := variantDevice(t, "slow")
	url, stop := startServer(t, dev.B)
	defer stop()
	code, body, took := post(t, url, dev.Input)
	if code != 200 || took < 2*time.Second {
		t.Fatalf("slow variant: %d in %v: %s", code, took, body)
	}
}

func TestFatVariantGrowsTheResidentSetPastTheLimit(t *testing.T) {
	dev := variantDevice(t, "fat")
	before := rss(t)
	_, stop := startServer(t, dev.B)
	defer stop()
	if grew := rss(t) - before; grew < 280<<20 {
		t.Fatalf("resident set grew %d MiB, want about 300", grew>>20)
	}
}

func TestHangVariantStopsAnsweringAfterLoad(t *testing.T) {
	dev := variantDevice(t, "hang")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // the hung server is left behind, as systemd would kill it
	go runServer(ctx, options{link: dev.B}, ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	check := selfCheck(ln.Addr())
	testutil.WaitFor(t, 5*time.Second, "the server to pass its self-check", func() bool { return check(context.Background()) == nil })
	time.Sleep(700 * time.Millisecond)
	cctx, ccancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer ccancel()
	if err := check(cctx); err == nil {
		t.Fatal("the hang variant still answers the liveness check")
	}
}

func TestBadRequestsAreRefusedWithReasons(t *testing.T) {
	dev, err := demobench.NewDevice(t.TempDir(), models)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := startServer(t, dev.Link)
	defer stop()
	for body, want := range map[string]string{`{"inputs":[[1,2]]}`: "takes 4", `nope`: "want {", `{}`: "want {"} {
		if code, got, _ := post(t, url, []byte(body)); code != 400 || !strings.Contains(got, want) {
			t.Errorf("%s: %d %s", body, code, got)
		}
	}
	if resp, err := http.Get(url + "/v1/infer"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/infer: %v %v", resp.StatusCode, err)
	}
}

func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
