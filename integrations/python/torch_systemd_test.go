package python

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// The PyTorch example (torch_server.py, serving TorchScript models made by
// testdata/torch/make_models.py) in the example unit under a real private
// systemd manager, updated by the real modelslot. A good version commits; a
// version whose model.pt is corrupt is reverted, with the reason each
// activation must give: restart → the new process exits before READY=1
// (crash_loop); reload → the old process refuses the file and answers on as
// v2 (probe_mismatch). With reload, a client hitting the server all through
// the swap to v2 sees no failed request.
func TestTorchServerUpdatedByModelslot(t *testing.T) {
	systemdtest.Need(t)
	python := torchPython(t)
	bin := buildModelslot(t)
	models := t.TempDir()
	gen := exec.Command(python, "-B", filepath.Join("..", "..", "testdata", "torch", "make_models.py"), models)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make the TorchScript models: %v\n%s", err, out)
	}
	for _, tt := range []struct{ activation, reason string }{
		{"restart", "crash_loop:"},
		{"reload", "probe_mismatch:"},
	} {
		t.Run(tt.activation, func(t *testing.T) {
			// start_timeout: importing torch takes about a second here; the
			// reload case waits all of it for v3 before probe_mismatch.
			d := newServerDevice(t, python, bin, tt.activation, "torch_server.py", "15s")
			d.installFrom(t, 0, "v1", filepath.Join(models, "v1"))
			d.served(t, "v1")
			var load *clientLoop
			if tt.activation == "reload" {
				load = startLoop(t, d.port, filepath.Join(models, "v1", "probe", "input.json"))
			}
			d.installFrom(t, 0, "v2", filepath.Join(models, "v2"))
			if load != nil {
				load.stop(t, "v1", "v2")
			}
			d.served(t, "v2")
			d.installFrom(t, 4, "v3-corrupt", filepath.Join(models, "v3-corrupt")) // exit 4: reverted
			d.served(t, "v2")
			f := d.lastFailure(t)
			if f.Version != "v3-corrupt" || !strings.HasPrefix(f.Reason, tt.reason) {
				t.Fatalf("last failure %+v, want v3-corrupt reverted with %s", f, tt.reason)
			}
			t.Logf("v3-corrupt reverted: %s", f.Reason)
		})
	}
}

// torchPython is Debian's python3 with python3-torch, or a skip saying how to
// get it (CI installs it: scripts/ci-setup.sh).
func torchPython(t *testing.T) string {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("the PyTorch example needs Debian's python3-torch for %s (apt-get install python3-torch; scripts/ci-setup.sh does): %v %s", python, err, bytes.TrimSpace(out))
		testutil.Missing(t, "%s", msg)
	}
	return python
}

func (d *device) installFrom(t *testing.T, want int, version, dir string) {
	t.Helper()
	d.modelslot(t, want, "install", "--insecure", "--label", version, dir)
}

type failure struct{ Version, Reason string }

func (d *device) lastFailure(t *testing.T) failure {
	t.Helper()
	var st struct {
		Models []struct {
			ActiveVersion *string  `json:"active_version"`
			LastFailure   *failure `json:"last_failure"`
		}
	}
	if err := json.Unmarshal([]byte(d.modelslot(t, 0, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Models) != 1 || st.Models[0].LastFailure == nil {
		t.Fatalf("status: %+v, want one model with a last failure", st)
	}
	return *st.Models[0].LastFailure
}

// clientLoop sends the probe input from 2 clients back to back and counts
// failed requests and the versions that answered.
type clientLoop struct {
	done     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
	mu       sync.Mutex
	versions map[string]int
	errs     []string
}

func startLoop(t *testing.T, port int, input string) *clientLoop {
	body, err := os.ReadFile(input)
	must(t, err)
	l := &clientLoop{done: make(chan struct{}), versions: map[string]int{}}
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/infer", port)
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-l.done:
					return
				default:
				}
				l.one(&c, url, body)
			}
		}()
	}
	return l
}

func (l *clientLoop) one(c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	var a struct {
		Outputs [][]float64
		Version string
	}
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || len(a.Outputs) != 2) {
			err = fmt.Errorf("%s, %d output rows", resp.Status, len(a.Outputs))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.fail.Add(1)
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
		return
	}
	l.ok.Add(1)
	l.versions[a.Version]++
}

// stop ends the loop and fails t on any failed request, or when not every
// version in want answered (then the loop did not span the swap).
func (l *clientLoop) stop(t *testing.T, want ...string) {
	t.Helper()
	close(l.done)
	l.wg.Wait()
	t.Logf("during the reload: %d requests answered, %d failed, by version %v", l.ok.Load(), l.fail.Load(), l.versions)
	if l.fail.Load() != 0 {
		t.Fatalf("%d requests failed during the reload: %v", l.fail.Load(), l.errs)
	}
	for _, v := range want {
		if l.versions[v] == 0 {
			t.Fatalf("no request was answered by %s (%v): the loop did not span the swap", v, l.versions)
		}
	}
}
