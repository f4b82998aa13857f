package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/modelslot/modelslot/verify"
)

// The hostile-input suite of issue 3, for what the fetch layer owns. Each test
// runs the real device path against a real loopback server and asserts the
// kind and the words of the error.

// firstChunk is the first chunk of weights.bin in the published manifest.
func (r *repo) firstChunk(v string) verify.Chunk {
	m := r.publishedManifest(v)
	f, _ := m.Lookup("weights.bin")
	return f.Chunks[0]
}

func TestHostileCorruptChunk(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	name := r.chunkFile(r.firstChunk("v1").SHA256)
	b, _ := os.ReadFile(name)
	b[len(b)/2] ^= 0x55
	os.WriteFile(name, b, 0o644)
	_, _, err := install(t, fastClient(), r, nil, t.TempDir())
	// Under a valid signed manifest, bytes that fail their digest are the
	// transport's fault: fetched again, then a download failure.
	wantTransportFailure(t, err, "the source sent other content")
	if n := r.hits["/"+verify.ChunkPath(r.firstChunk("v1").SHA256)]; n != corruptRetries+1 {
		t.Fatalf("the corrupt chunk was requested %d times, want 1 + %d retries", n, corruptRetries)
	}
}

func TestHostileTruncatedChunk(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	c := r.firstChunk("v1")
	os.Truncate(r.chunkFile(c.SHA256), c.CSize/2)
	_, _, err := install(t, fastClient(), r, nil, t.TempDir())
	wantTransportFailure(t, err, "truncated")
}

func TestHostileValidChunkUnderAnotherAddress(t *testing.T) {
	r := newRepo(t)
	dir := t.TempDir()
	// Two one-chunk files of equal size and no redundancy: their chunks have
	// the same compressed size, so only the digest can tell them apart.
	writeFile(t, dir, "a.bin", randomBytes(10<<10, 1))
	writeFile(t, dir, "b.bin", randomBytes(10<<10, 2))
	r.publish(dir, "v1")
	m := r.publishedManifest("v1")
	a, _ := m.Lookup("a.bin")
	b, _ := m.Lookup("b.bin")
	if a.Chunks[0].CSize != b.Chunks[0].CSize {
		t.Fatalf("test setup: compressed sizes %d and %d differ", a.Chunks[0].CSize, b.Chunks[0].CSize)
	}
	other, _ := os.ReadFile(r.chunkFile(b.Chunks[0].SHA256))
	os.WriteFile(r.chunkFile(a.Chunks[0].SHA256), other, 0o644)
	_, _, err := install(t, fastClient(), r, nil, t.TempDir())
	wantTransportFailure(t, err, "another chunk under this address")
}

// editManifest changes the stored manifest's payload but keeps its signature.
func (r *repo) editManifest(v string, edit func(m map[string]any)) {
	name := filepath.Join(r.dir, "demo/manifests", v+".json")
	raw, _ := os.ReadFile(name)
	var env verify.Envelope
	json.Unmarshal(raw, &env)
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	var m map[string]any
	json.Unmarshal(payload, &m)
	edit(m)
	payload, _ = json.Marshal(m)
	env.Payload = base64.StdEncoding.EncodeToString(payload)
	raw, _ = json.Marshal(env)
	os.WriteFile(name, raw, 0o644)
}

func TestHostileManifestEditedAfterSigning(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	r.editManifest("v1", func(m map[string]any) { m["sequence"] = 99 })
	c := fastClient()
	_, err := c.Resolve(context.Background(), r.srv.URL+"/demo/manifests/v1.json", r.trusted())
	wantErr(t, err, verify.ErrRejected, "bad signature")
	// Through the channel the digest it names catches the edit first.
	_, err = c.Resolve(context.Background(), r.channelURL(), r.trusted())
	wantErr(t, err, verify.ErrRejected, "the channel names")
}

func TestHostileUntrustedKey(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	_, err := fastClient().Resolve(context.Background(), r.channelURL(), verify.NewKeyring(testKey(t, 2).Public()))
	wantErr(t, err, verify.ErrRejected, "untrusted key")
}

func TestHostileNoSignature(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	name := filepath.Join(r.dir, "demo/channels/stable.json")
	raw, _ := os.ReadFile(name)
	var env verify.Envelope
	json.Unmarshal(raw, &env)
	env.Signatures = nil
	raw, _ = json.Marshal(env)
	os.WriteFile(name, raw, 0o644)
	_, err := fastClient().Resolve(context.Background(), r.channelURL(), r.trusted())
	wantErr(t, err, verify.ErrRejected, "no signature")
}

func TestHostileOversizedManifest(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, "/manifests/") {
			return false
		}
		// No Content-Length: the client must stop by itself.
		for range verify.MaxEnvelopeSize/(1<<20) + 2 {
			w.Write(bytes.Repeat([]byte(" "), 1<<20))
		}
		return true
	})
	_, err := fastClient().Resolve(context.Background(), r.channelURL(), r.trusted())
	wantErr(t, err, verify.ErrRejected, "larger than the")
}

func TestHostileZstdBomb(t *testing.T) {
	data := []byte("the declared content of a tiny file")
	payload := append(append([]byte{}, data...), make([]byte, 256<<20)...) // then 256 MiB of zeros
	enc, _ := zstd.NewWriter(nil)
	var streamed bytes.Buffer // a streamed frame does not declare its size up front
	sw, _ := zstd.NewWriter(&streamed)
	sw.Write(payload)
	sw.Close()
	for name, bomb := range map[string][]byte{"size in header": enc.EncodeAll(payload, nil), "no size in header": streamed.Bytes()} {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t)
			sum := sha256.Sum256(data)
			hexSum := hex.EncodeToString(sum[:])
			r.handmade([]verify.File{{Path: "tiny.bin", Size: int64(len(data)), Mode: 0o644, SHA256: hexSum,
				Chunks: []verify.Chunk{{SHA256: hexSum, Size: int64(len(data)), CSize: int64(len(bomb))}}}},
				map[string][]byte{hexSum: bomb})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := install(t, fastClient(), r, nil, t.TempDir())
			runtime.ReadMemStats(&after)
			wantTransportFailure(t, err, "decompresses to more than the 35 bytes")
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("the bomb made the installer allocate %d MiB", grew>>20)
			}
		})
	}
}

// handmade signs a manifest the test built and stores its chunks as given.
func (r *repo) handmade(files []verify.File, chunks map[string][]byte) {
	r.t.Helper()
	m := &verify.Manifest{Schema: 1, Model: "demo", Version: "v1", Sequence: 1, Files: files}
	env, err := verify.SignManifest(m, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	writeFile(r.t, r.dir, "demo/manifests/v1.json", env)
	for sum, z := range chunks {
		writeFile(r.t, r.dir, verify.ChunkPath(sum), z)
	}
	es := sha256.Sum256(env)
	ch, _ := verify.SignChannel(&verify.Channel{Schema: 1, Model: "demo", Channel: "stable", Version: "v1", Sequence: 1,
		Manifest: verify.ManifestPath("v1"), ManifestSHA256: hex.EncodeToString(es[:])}, r.key)
	writeFile(r.t, r.dir, "demo/channels/stable.json", ch)
}

func TestHostile500sThenRecovery(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	target := "/" + verify.ChunkPath(r.firstChunk("v1").SHA256)
	var fails atomic.Int32
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if req.URL.Path == target && fails.Add(1) <= 3 {
			http.Error(w, "overloaded", http.StatusInternalServerError)
			return true
		}
		return false
	})
	if _, _, err := install(t, fastClient(), r, nil, t.TempDir()); err != nil {
		t.Fatalf("three 500s must be retried: %v", err)
	}
	if r.hits[target] != 4 {
		t.Fatalf("%d requests for the chunk, want 3 failures and 1 success", r.hits[target])
	}
}

func TestHostileEverySecondRequestFails(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	// Per path, so that parallel downloads cannot make one chunk unlucky five
	// times in a row: every path fails its first, third, fifth… request.
	var mu sync.Mutex
	n := map[string]int{}
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		mu.Lock()
		n[req.URL.Path]++
		odd := n[req.URL.Path]%2 == 1
		mu.Unlock()
		if odd {
			http.Error(w, "flaky", http.StatusBadGateway)
			return true
		}
		return false
	})
	if _, _, err := install(t, fastClient(), r, nil, t.TempDir()); err != nil {
		t.Fatalf("a flaky server must not fail the install: %v", err)
	}
}

func TestHostile404Chunk(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	c := r.firstChunk("v1")
	os.Remove(r.chunkFile(c.SHA256))
	_, _, err := install(t, fastClient(), r, nil, t.TempDir())
	wantErr(t, err, ErrNotFound, "HTTP 404")
	if got := r.hits["/"+verify.ChunkPath(c.SHA256)]; got != 5 {
		t.Fatalf("404 requested %d times, want 1 + 4 retries", got)
	}
}

// dropMidChunk answers the first request for path with half of the chunk and
// then ends the connection: with a TCP reset when reset, else a plain close.
func dropMidChunk(r *repo, path string, reset bool) {
	var once atomic.Bool
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if req.URL.Path != path || !once.CompareAndSwap(false, true) {
			return false
		}
		body, _ := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(path)))
		conn, buf, _ := w.(http.Hijacker).Hijack()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		buf.Write(body[:len(body)/2])
		buf.Flush()
		time.Sleep(100 * time.Millisecond) // let the client read the half
		if reset {
			conn.(*net.TCPConn).SetLinger(0) // close with RST
		}
		conn.Close()
		return true
	})
}

func testDropResumes(t *testing.T, reset bool) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	c := r.firstChunk("v1")
	dropMidChunk(r, "/"+verify.ChunkPath(c.SHA256), reset)
	if _, _, err := install(t, fastClient(), r, nil, t.TempDir()); err != nil {
		t.Fatalf("a dropped connection must be resumed: %v", err)
	}
	want := "bytes=" + strconv.FormatInt(c.CSize/2, 10) + "-"
	if len(r.ranges) != 1 || r.ranges[0] != want {
		t.Fatalf("Range requests %q, want one asking for the rest: %q", r.ranges, want)
	}
}

func TestHostileConnectionResetMidChunkResumes(t *testing.T) { testDropResumes(t, true) }
func TestHostileHalfChunkThenDropResumes(t *testing.T)       { testDropResumes(t, false) }

func TestHostileStallingServerTimesOut(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, "/chunks/") {
			return false
		}
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		select { // then nothing, until the client gives up
		case <-req.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	c := NewClient(ClientOptions{Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, StallTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, _, err := install(t, c, r, nil, t.TempDir())
	wantErr(t, err, ErrDownload, "the server stalled")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a stall took %s to detect with a 200ms stall timeout", d)
	}
}

func TestHostileStallBeforeHeadersTimesOut(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	r.setFault(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/chunks/") {
			select {
			case <-req.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return true
		}
		return false
	})
	c := NewClient(ClientOptions{Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, StallTimeout: 200 * time.Millisecond})
	_, _, err := install(t, c, r, nil, t.TempDir())
	wantErr(t, err, ErrDownload, "timeout awaiting response headers")
}

func TestHostileBudgetExceededRefusedBeforeDownload(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	p := plan(t, r)
	err := p.Check(Space{StagingDir: t.TempDir(), SlotDir: t.TempDir(), Budget: 1000, Margin: 1})
	wantErr(t, err, ErrOverBudget, "the budget is 1000")
	if r.chunkRx.Load() != 0 {
		t.Fatal("chunks were requested before the budget check")
	}
}

func plan(t *testing.T, r *repo) *Plan {
	t.Helper()
	res, err := fastClient().Resolve(context.Background(), r.channelURL(), r.trusted())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := OpenStaging(t.TempDir())
	p, err := NewPlan(context.Background(), res.Manifest, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
