package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/verify"
)

// repoServer is a real loopback repository whose answers a test can spoil.
type repoServer struct {
	t     *testing.T
	dir   string
	key   *verify.PrivateKey
	pub   string // the key's .pub file
	url   string
	mu    sync.Mutex
	spoil func(w http.ResponseWriter, r *http.Request) bool // true: answered already
}

func newRepoServer(t *testing.T) *repoServer {
	t.Helper()
	r := &repoServer{t: t, dir: t.TempDir()}
	k, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r.key, r.pub = k, filepath.Join(t.TempDir(), "publisher")
	if err := verify.WriteKeyPair(r.pub, k); err != nil {
		t.Fatal(err)
	}
	r.pub += ".pub"
	files := http.FileServer(http.Dir(r.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		spoil := r.spoil
		r.mu.Unlock()
		if spoil != nil && spoil(w, req) {
			return
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *repoServer) publish(dir, version string, req ...*verify.Requires) {
	r.t.Helper()
	opts := publish.Options{Repo: r.dir, Model: "demo", Version: version, Channel: "stable", Key: r.key}
	if len(req) > 0 {
		opts.Requires = req[0]
	}
	_, err := publish.Publish(context.Background(), dir, opts)
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *repoServer) channel() string { return r.url + "/demo/channels/stable.json" }

func (r *repoServer) setSpoil(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	r.spoil = f
	r.mu.Unlock()
}

// repoEnv is a device that trusts the repository's key and runs v1 from it.
func repoEnv(t *testing.T, r *repoServer) *env {
	t.Helper()
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("trusted_keys = [%q]\n", r.pub)
	e.writeConfig()
	r.publish(makeModel(t, 300<<10, 5000), "v1")
	e.must(0, "install", r.channel())
	return e
}

// afterFailure checks what every hostile test must leave: v1 serving and
// verifying, no half slot.
func afterFailure(t *testing.T, e *env) {
	t.Helper()
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q after a refused update, want v1", got)
	}
	e.must(0, "verify")
}

func TestRepositoryInstallRefusals(t *testing.T) {
	tests := []struct {
		name     string
		extra    string // config, in the [[model]] table
		prepare  func(r *repoServer, m2 string)
		wantCode int
		want     string
	}{
		{name: "corrupt chunk", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2")
			r.setSpoil(func(w http.ResponseWriter, req *http.Request) bool {
				if !isChunkData(req.URL.Path) {
					return false
				}
				b, _ := os.ReadFile(filepath.Join(r.dir, req.URL.Path))
				for i := 0; i < len(b); i += 4096 { // every range asked for has a bad byte
					b[i] ^= 0xff
				}
				http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b)) // Range honoured
				return true
			})
		}, wantCode: exitError, want: "chunk does not match the manifest"}, // the manifest held: the network's fault, retried later
		{name: "captive portal", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2")
			r.setSpoil(func(w http.ResponseWriter, req *http.Request) bool {
				if !isChunkData(req.URL.Path) {
					return false
				}
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte("<html>Log in to continue</html>"))
				return true
			})
		}, wantCode: exitError, want: "run the same command again"},
		{name: "404 channel", prepare: func(r *repoServer, m2 string) {
			r.setSpoil(func(w http.ResponseWriter, req *http.Request) bool {
				if strings.Contains(req.URL.Path, "/channels/") {
					http.NotFound(w, req)
					return true
				}
				return false
			})
		}, wantCode: exitError, want: "check the url"},
		{name: "404 pack", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2")
			r.setSpoil(func(w http.ResponseWriter, req *http.Request) bool {
				if isChunkData(req.URL.Path) {
					http.NotFound(w, req)
					return true
				}
				return false
			})
		}, wantCode: exitError, want: "not found"},
		{name: "manifest edited after signing", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2")
			name := filepath.Join(r.dir, "demo/manifests/v2.json")
			b, _ := os.ReadFile(name)
			os.WriteFile(name, bytes.Replace(b, []byte(`"payload": "`), []byte(`"payload": "e`), 1), 0o644)
		}, wantCode: exitRejected, want: "rejected"},
		{name: "untrusted key", prepare: func(r *repoServer, m2 string) {
			k, _ := verify.GenerateKey(rand.Reader)
			r.key = k // the repository is now signed by a key the device does not trust
			r.publish(m2, "v2")
		}, wantCode: exitRejected, want: "untrusted"},
		{name: "budget exceeded", extra: "download_budget = \"1KiB\"\n", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2")
		}, wantCode: exitRejected, want: "budget"},
		{name: "incompatible device", prepare: func(r *repoServer, m2 string) {
			r.publish(m2, "v2", &verify.Requires{Arch: []string{"riscv64"}})
		}, wantCode: exitRejected, want: "riscv64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepoServer(t)
			e := repoEnv(t, r)
			e.extraConf += tt.extra
			e.writeConfig()
			m2 := makeModel(t, 300<<10, 6000)
			tt.prepare(r, m2)
			res := e.must(tt.wantCode, "install", r.channel())
			if !strings.Contains(strings.ToLower(res.stderr), tt.want) {
				t.Fatalf("want a message about %q, got:\n%s", tt.want, res.stderr)
			}
			afterFailure(t, e)
		})
	}
}

// TestRepositoryInstallTooLargeForTheDiskCreatesNothing: an update the disk
// cannot hold is refused with the no-space error (exit 1 and its hint) before
// anything is created in staging: once, a sparse staged file of the declared
// size (118 GiB) stayed behind.
func TestRepositoryInstallTooLargeForTheDiskCreatesNothing(t *testing.T) {
	r := newRepoServer(t)
	fsDir := mountTmpfs(t, "2m")
	e := newEnvAt(t, filepath.Join(fsDir, "state"), filepath.Join(fsDir, "demo"))
	e.extraConf = fmt.Sprintf("trusted_keys = [%q]\n", r.pub)
	e.writeConfig()
	r.publish(makeModel(t, 4<<20), "v1")
	res := e.must(exitError, "install", r.channel())
	if !strings.Contains(res.stderr, "not enough free space") || !strings.Contains(res.stderr, "hint: free space") {
		t.Fatalf("want the no-space error and its hint, got:\n%s", res.stderr)
	}
	staging := filepath.Join(fsDir, "state", "demo", "staging")
	filepath.WalkDir(staging, func(path string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(staging, path); err == nil && rel != "." && rel != "work" {
			t.Errorf("the refused install created staging/%s", rel)
		}
		return nil
	})
}

// isChunkData reports whether path is chunk bytes in a repository: a pack
// (format 2) or a chunk file (format 1).
func isChunkData(path string) bool {
	return strings.HasPrefix(path, "/packs/") || strings.HasPrefix(path, "/chunks/")
}

// A config-only update, published by the real publisher and installed by
// the real binary, costs two requests: the channel pointer and the manifest,
// which carries the config inline; the config's index section is derived
// and no locations or pack are asked for (docs/repository.md, Device side).
func TestRepositoryConfigOnlyUpdateIsChannelAndManifestOnly(t *testing.T) {
	r := newRepoServer(t)
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("trusted_keys = [%q]\n", r.pub)
	e.writeConfig()
	dir := makeModel(t, 300<<10, 5000)
	r.publish(dir, "v1")
	e.must(0, "install", r.channel())
	config := []byte(`{"arch":"mlp","layers":2}`)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	r.publish(dir, "v2")
	var mu sync.Mutex
	var seen []string
	r.setSpoil(func(_ http.ResponseWriter, req *http.Request) bool {
		mu.Lock()
		seen = append(seen, req.URL.Path)
		mu.Unlock()
		return false
	})
	e.must(0, "install", r.channel())
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/demo/channels/stable.json", "/demo/manifests/v2.json"}; strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("the config-only update asked for %q, want %q", seen, want)
	}
	if b, err := os.ReadFile(filepath.Join(e.link, "config.json")); err != nil || !bytes.Equal(b, config) {
		t.Fatalf("the served config.json is %q (%v), want v2's %q", b, err, config)
	}
	if got := e.checkInvariants(); got != "v2" {
		t.Fatalf("active %q, want v2", got)
	}
	e.must(0, "verify")
}
