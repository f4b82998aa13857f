package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

// bench holds the repository, its loopback nginx and the signing key.
type bench struct {
	dir  string
	repo string
	key  *verify.PrivateKey
	pub  string // public key file
	web  *nginx // serves dir: repo/, whole.zst, the baselines' files
	url  string
	self string // this program, run with -child for each install
	// toolTimeout bounds each baseline command: a tool that loops must not
	// hang the bench.
	toolTimeout time.Duration
}

func newBench(dir string) (*bench, error) {
	b := &bench{dir: dir, repo: filepath.Join(dir, "repo"), toolTimeout: 5 * time.Minute}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b.self = self
	k, err := verify.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	b.key = k
	if err := verify.WriteKeyPair(filepath.Join(dir, "publisher"), k); err != nil {
		return nil, err
	}
	b.pub = filepath.Join(dir, "publisher.pub")
	logs := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	if b.web, err = startNginx(logs, dir); err != nil {
		return nil, err
	}
	b.url = b.web.url
	return b, nil
}

func (b *bench) close() { b.web.stop() }

// publish publishes model directory src as version v of model name.
func (b *bench) publish(src, name, v string) (*publish.Result, error) {
	res, err := publish.Publish(context.Background(), src, publish.Options{Repo: b.repo, Model: name, Version: v, Channel: "stable", Key: b.key})
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", name, v, err)
	}
	return res, nil
}

func (b *bench) channelURL(name string) string {
	return b.url + "/repo/" + name + "/channels/stable.json"
}

// install runs one modelslot install in a child process into stateDir and
// returns its wall time and peak RSS.
func (b *bench) install(name, stateDir string) (time.Duration, int64, error) {
	cmd := exec.Command(b.self, "-child", b.channelURL(name), b.pub, stateDir, name)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("child install of %s: %w", name, err)
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
