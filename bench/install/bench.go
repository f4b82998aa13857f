package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

// bench holds the repository, its loopback server and the signing key.
type bench struct {
	dir    string
	repo   string
	key    *verify.PrivateKey
	pub    string // public key file
	srv    *http.Server
	url    string
	served atomic.Int64 // response body bytes, for bytes on the wire
}

func newBench(dir string) (*bench, error) {
	b := &bench{dir: dir, repo: filepath.Join(dir, "repo")}
	k, err := verify.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	b.key = k
	if err := verify.WriteKeyPair(filepath.Join(dir, "publisher"), k); err != nil {
		return nil, err
	}
	b.pub = filepath.Join(dir, "publisher.pub")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	files := http.FileServer(http.Dir(dir))
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(&countingWriter{ResponseWriter: w, n: &b.served}, r)
	})}
	go b.srv.Serve(ln)
	b.url = "http://" + ln.Addr().String()
	return b, nil
}

func (b *bench) close() { b.srv.Close() }

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// publish publishes model directory src as version v of model name.
func (b *bench) publish(src, name, v string) (*publish.Result, error) {
	return publish.Publish(context.Background(), src, publish.Options{Repo: b.repo, Model: name, Version: v, Channel: "stable", Key: b.key})
}

func (b *bench) channelURL(name string) string {
	return b.url + "/repo/" + name + "/channels/stable.json"
}

// install runs one modelslot install in a child process into stateDir and
// returns its wall time and peak RSS.
func (b *bench) install(name, stateDir string) (time.Duration, int64, error) {
	cmd := exec.Command(os.Args[0], "-child", b.channelURL(name), b.pub, stateDir, name)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("child install: %w", err)
	}
	d := time.Since(start)
	rss, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("child install: peak RSS %q: %w", out, err)
	}
	return d, rss, nil
}

// pipeline runs the shell baseline on the whole file compressed as one stream.
func (b *bench) pipeline(zstURL, out string) (time.Duration, error) {
	script := fmt.Sprintf("set -o pipefail; curl -sf %q | zstd -q -d | tee %q | sha256sum >/dev/null; sync", zstURL, out)
	start := time.Now()
	if o, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pipeline: %v: %s", err, o)
	}
	return time.Since(start), nil
}
