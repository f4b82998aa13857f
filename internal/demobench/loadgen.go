// Package demobench drives modelslot-demo servers for the tests and for
// `make bench`: a load generator that checks every answer against the probe of
// the version that claims it, and measurements of how long a link swap takes
// to reach the answers under in-process reload, systemd restart, and restart
// with socket activation.
//
// Invariant: an answer counts as good only when its status is 200, its
// version is one of the expected ones and its outputs equal that version's
// expected outputs within the tolerance, so an answer computed from a mix of
// two models is a failure.
package demobench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Expect is what each known version answers to the probe input.
type Expect map[string][][]float64

// ReadExpect reads probe/expected.json of each model directory, keyed by
// version, and the probe input of the first one.
func ReadExpect(dirs map[string]string) (Expect, []byte, error) {
	exp := Expect{}
	var input []byte
	for version, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "probe/expected.json"))
		if err != nil {
			return nil, nil, fmt.Errorf("read probe of %s: %w", version, err)
		}
		var e struct{ Outputs [][]float64 }
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, nil, fmt.Errorf("probe of %s: %w", version, err)
		}
		exp[version] = e.Outputs
		if input == nil {
			if input, err = os.ReadFile(filepath.Join(dir, "probe/input.json")); err != nil {
				return nil, nil, fmt.Errorf("read probe input: %w", err)
			}
		}
	}
	return exp, input, nil
}

// Answer is one request's outcome.
type Answer struct {
	At      time.Time // when the answer arrived
	Version string    // "" when failed
	Err     error
}

// failureBackoff paces a worker after a failed request, so a server that is
// down is counted in tries a client would really make, not in a busy loop.
const failureBackoff = 10 * time.Millisecond

// Load sends the probe input to url from Workers loops until ctx ends.
type Load struct {
	URL       string
	Workers   int
	Input     []byte
	Expect    Expect
	Tolerance float64
}

// Run returns every answer in arrival order per worker, merged.
func (g Load) Run(ctx context.Context) []Answer {
	tr := &http.Transport{MaxIdleConnsPerHost: g.Workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var all []Answer
	var wg sync.WaitGroup
	for range g.Workers {
		wg.Go(func() {
			var mine []Answer
			for ctx.Err() == nil {
				v, err := g.once(client)
				mine = append(mine, Answer{At: time.Now(), Version: v, Err: err})
				if err != nil {
					time.Sleep(failureBackoff)
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all
}

// once is deliberately not bound to ctx: a request in flight when the load
// stops still has to finish well.
func (g Load) once(client *http.Client) (string, error) {
	resp, err := client.Post(g.URL, "application/json", bytes.NewReader(g.Input))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return g.Check(string(body))
}

// Check returns the version an answer body claims, or an error when its
// outputs are not that version's expected outputs.
func (g Load) Check(body string) (string, error) {
	var a struct {
		Outputs [][]float64
		Version string
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		return "", fmt.Errorf("answer is not JSON: %w", err)
	}
	want, ok := g.Expect[a.Version]
	if !ok {
		return "", fmt.Errorf("answer claims unknown version %q", a.Version)
	}
	if !near(a.Outputs, want, g.Tolerance) {
		return "", fmt.Errorf("answer claims %s but its outputs %v are not %s's %v", a.Version, a.Outputs, a.Version, want)
	}
	return a.Version, nil
}

func near(a, b [][]float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if math.Abs(a[i][j]-b[i][j]) > tol {
				return false
			}
		}
	}
	return true
}

// Summary counts answers.
type Summary struct {
	OK, Failed int
	ByVersion  map[string]int
	Errors     []string // the first few distinct failures
}

// Summarize counts answers by outcome and version.
func Summarize(answers []Answer) Summary {
	s := Summary{ByVersion: map[string]int{}}
	seen := map[string]bool{}
	for _, a := range answers {
		if a.Err != nil {
			s.Failed++
			if msg := a.Err.Error(); !seen[msg] && len(s.Errors) < 5 {
				seen[msg] = true
				s.Errors = append(s.Errors, msg)
			}
			continue
		}
		s.OK++
		s.ByVersion[a.Version]++
	}
	return s
}
