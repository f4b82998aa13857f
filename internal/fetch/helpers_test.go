package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/chunker"
	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/verify"
)

var testParams = chunker.Params{Min: 16 << 10, Avg: 32 << 10, Max: 64 << 10}

func testKey(t testing.TB, seed byte) *verify.PrivateKey {
	t.Helper()
	return testKeyNoT(seed)
}

// testKeyNoT is testKey for a child process, which has no *testing.T.
func testKeyNoT(seed byte) *verify.PrivateKey {
	k, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		panic(err)
	}
	return k
}

// randomBytes are incompressible, so compressed sizes are predictable.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// repo is a published repository served over loopback HTTP, with a hook to
// misbehave and a log of what was asked for.
type repo struct {
	t       *testing.T
	dir     string
	key     *verify.PrivateKey
	srv     *httptest.Server
	fault   atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	mu      sync.Mutex
	hits    map[string]int // path → requests
	ranges  []string       // Range headers seen
	chunkRx atomic.Int64   // chunk requests
	packs   []string       // pack requests: "path range" ("" when none)
	idx     []string       // index requests: their Range ("" when none)
	idxSent atomic.Int64   // index bytes sent
	loc     []string       // locations requests: their Range ("" when none)
	locSent atomic.Int64   // locations bytes sent
	seq     uint64         // the last sequence published
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, dir: t.TempDir(), key: testKey(t, 1), hits: map[string]int{}}
	files := http.FileServer(http.Dir(r.dir))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.URL.Path]++
		if req.Header.Get("Range") != "" {
			r.ranges = append(r.ranges, req.Header.Get("Range"))
		}
		if strings.Contains(req.URL.Path, "/packs/") {
			r.packs = append(r.packs, req.URL.Path+" "+req.Header.Get("Range"))
		}
		if strings.HasSuffix(req.URL.Path, ".idx") {
			r.idx = append(r.idx, req.Header.Get("Range"))
			w = &countingWriter{ResponseWriter: w, n: &r.idxSent}
		}
		if strings.HasSuffix(req.URL.Path, ".loc") {
			r.loc = append(r.loc, req.Header.Get("Range"))
			w = &countingWriter{ResponseWriter: w, n: &r.locSent}
		}
		r.mu.Unlock()
		if strings.Contains(req.URL.Path, "/chunks/") {
			r.chunkRx.Add(1)
		}
		if f := r.fault.Load(); f != nil && (*f)(w, req) {
			return
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// countingWriter counts the body bytes a handler sends.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// setFault installs a misbehaviour; it returns true when it answered.
func (r *repo) setFault(f func(w http.ResponseWriter, req *http.Request) bool) { r.fault.Store(&f) }

func (r *repo) channelURL() string { return r.srv.URL + "/demo/channels/stable.json" }

func (r *repo) trusted() verify.Keyring { return verify.NewKeyring(r.key.Public()) }

// chunkFile is the on-disk path of a chunk in the served repository.
func (r *repo) chunkFile(sum string) string {
	return filepath.Join(r.dir, filepath.FromSlash(verify.ChunkPath(sum)))
}

// model writes a small model: two weight files and a probe.
func model(t *testing.T, seed uint64) string {
	dir := t.TempDir()
	writeFile(t, dir, "weights.bin", randomBytes(400<<10, seed))
	writeFile(t, dir, "head.bin", randomBytes(100<<10, seed+100))
	writeFile(t, dir, "probe/input.json", []byte(`{"x":[1]}`))
	writeFile(t, dir, "probe/expected.json", []byte(`{"y":[2]}`))
	return dir
}

// fastOptions retry quickly so fault tests take milliseconds.
var fastOptions = ClientOptions{Retries: 4, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond,
	StallTimeout: 2 * time.Second}

func fastClient() *Client { return NewClient(fastOptions) }

// dirFill is a minimal Fill over a directory, checking like slots.Fill does.
type dirFill struct {
	dir     string
	adopted int // files adopted unhashed
}

func (d *dirFill) WriteFile(ctx context.Context, f verify.File, r io.Reader) error {
	out, err := d.CreateFile(f)
	if err != nil {
		return err
	}
	defer out.Close()
	h := verify.NewHash()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, f.Size+1))
	if err != nil {
		return err
	}
	if n != f.Size || verify.HexDigest(h.Sum(nil)) != f.SHA256 {
		return &verify.MismatchError{Path: f.Path, Reason: "content differs"}
	}
	return out.Chmod(os.FileMode(f.Mode))
}

func (d *dirFill) Dir() string { return d.dir }

// AdoptVerified renames like slots.Fill does; install checks the tree after.
func (d *dirFill) AdoptVerified(f verify.File, from *durable.Root, rel string) error {
	d.adopted++
	if err := d.Adopt(f, from, rel); err != nil {
		return err
	}
	name := filepath.Join(d.dir, filepath.FromSlash(f.Path))
	return os.Chmod(name, os.FileMode(f.Mode))
}

func (d *dirFill) CreateFile(f verify.File) (*os.File, error) {
	name := filepath.Join(d.dir, filepath.FromSlash(f.Path))
	os.MkdirAll(filepath.Dir(name), 0o755)
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(f.Mode))
}

func (d *dirFill) Adopt(f verify.File, from *durable.Root, rel string) error {
	name := filepath.Join(d.dir, filepath.FromSlash(f.Path))
	os.MkdirAll(filepath.Dir(name), 0o755)
	to, err := durable.OpenRoot(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer to.Close()
	return from.RenameTo(rel, to, filepath.Base(name))
}

// workIn is a work directory at dir, opened as a root of its own, for a
// test of one of its files.
func workIn(t testing.TB, dir string) *work {
	t.Helper()
	r, err := durable.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &work{root: r, rel: ".", dir: dir}
}

// install runs the whole device path (Source's steps) into a new directory
// and returns it.
func install(t *testing.T, c *Client, r *repo, active *Active, staging string) (string, *Plan, error) {
	t.Helper()
	ctx := context.Background()
	res, err := c.Resolve(ctx, r.channelURL(), r.trusted())
	if err != nil {
		return "", nil, err
	}
	st, err := OpenStaging(staging)
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{}
	src.resolvedBy(c, res)
	out := t.TempDir()
	p, err := src.fill(ctx, &dirFill{dir: out}, st, active, Space{StagingDir: st.Dir(), SlotDir: out})
	if err != nil {
		return "", p, err
	}
	return out, p, verify.VerifyTree(ctx, out, res.Manifest, 1)
}

// wantErr asserts err is of kind and mentions want.
func wantErr(t *testing.T, err, kind error, want string) {
	t.Helper()
	t.Logf("error: %v", err)
	if !errors.Is(err, kind) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant kind %q mentioning %q", err, kind, want)
	}
}
