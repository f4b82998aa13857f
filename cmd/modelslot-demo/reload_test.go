package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/demobench"
)

// startServer runs the demo server in-process on a loopback port.
func startServer(t *testing.T, link string) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.Default()
	}
	go func() { done <- runServer(ctx, options{link: link, drain: 50 * time.Millisecond}, ln, log) }()
	url = "http://" + ln.Addr().String()
	waitHealthy(t, url, "")
	return url, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}
}

// waitHealthy waits until /healthz answers 200 naming version ("" any).
func waitHealthy(t *testing.T, url, version string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && (version == "" || strings.Contains(string(b), fmt.Sprintf("%q", version))) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s not healthy with version %q: %v", url, version, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The first proof: a load generator hits the server while the link
// is swapped back and forth; no request fails and every answer is one
// version's answer, never a mix.
func TestReloadUnderLoadDropsNothingAndNeverMixesVersions(t *testing.T) {
	dev, err := demobench.NewDevice(t.TempDir(), "../../testdata/models")
	if err != nil {
		t.Fatal(err)
	}
	url, stop := startServer(t, dev.Link)
	defer stop()

	ctx, cancel := context.WithCancel(context.Background())
	load := demobench.Load{URL: url + "/v1/infer", Workers: 4, Input: dev.Input, Expect: dev.Expect, Tolerance: 1e-4}
	result := make(chan []demobench.Answer, 1)
	go func() { result <- load.Run(ctx) }()
	const swaps = 40
	for i := range swaps {
		target, version := dev.B, "v2"
		if i%2 == 1 {
			target, version = dev.A, "v1"
		}
		if err := demobench.Swap(dev.Link, target); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, url, version) // each swap is really served: 40 reloads
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	s := demobench.Summarize(<-result)
	t.Logf("%d answers: %v, %d failed", s.OK, s.ByVersion, s.Failed)
	if s.Failed != 0 {
		t.Fatalf("%d of %d requests failed under reload: %v", s.Failed, s.OK+s.Failed, s.Errors)
	}
	if s.ByVersion["v1"] == 0 || s.ByVersion["v2"] == 0 || s.OK < 200 {
		t.Fatalf("too little load to prove anything: %v", s.ByVersion)
	}
}
