package simulate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/modelslot/modelslot/internal/fleet"
	"github.com/modelslot/modelslot/internal/mqtttest"
	"github.com/modelslot/modelslot/internal/nginxtest"
	"github.com/modelslot/modelslot/internal/pgtest"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// stand is everything a simulated fleet meets, each part real and started
// here: a repository published with internal/publish and served by nginx, one
// mosquitto, a PostgreSQL cluster (fsync on) and the controller as the
// `modelslot fleet serve` binary.
type stand struct {
	t          *testing.T
	repo       string
	web        *nginxtest.Server
	broker     *mqtttest.Broker
	pg         *pgtest.Cluster
	ctl        *controllerProc
	publisher  *verify.PrivateKey
	pubKey     string       // the publisher's .pub
	rolloutPub string       // the rollout key's .pub
	brokerIn   atomic.Int64 // $SYS/broker/messages/received: every MQTT packet (PUBLISH, PUBACK, PINGREQ…)
	brokerPub  atomic.Int64 // $SYS/broker/publish/messages/received
	sims       []*simulator
}

// simulator is one `modelslot-fleet fleet simulate` process.
type simulator struct {
	cmd    *exec.Cmd
	out    bytes.Buffer // its summary (stdout); stderr goes with it
	exited chan struct{}
}

// startSimulator runs `modelslot-fleet fleet simulate` for o until the test ends
// (SIGTERM), quiet but for errors and its summary.
func startSimulator(t *testing.T, o Options) *simulator {
	t.Helper()
	bin := testutil.Binary(t, "github.com/modelslot/modelslot/cmd/modelslot-fleet")
	args := []string{"--model", o.Model, "--log-level", "error", "fleet", "simulate", "--devices", fmt.Sprint(o.Devices),
		"--id-prefix", o.IDPrefix, "--state-dir", o.StateDir, "--broker", o.Broker, "--source", o.Source,
		"--rollout-channel", o.RolloutChannel, "--trusted-keys", strings.Join(o.TrustedKeys, ","),
		"--rollout-keys", strings.Join(o.RolloutKeys, ","), "--fail-version", o.FailVersion, "--progress", "24h"}
	s := &simulator{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = &lockedWriter{w: &s.out}, &lockedWriter{w: &s.out}
	testutil.OK(t, s.cmd.Start())
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(60 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		fmt.Printf("fleet scale: %s %s:\n%s", o.IDPrefix, s.cmd.ProcessState, s.out.String())
	})
	return s
}

// checkSimulators fails the test when a simulator process died.
func (s *stand) checkSimulators(t *testing.T) {
	t.Helper()
	for _, sim := range s.sims {
		select {
		case <-sim.exited:
			t.Fatalf("fleet simulate %v exited: %s\n%s", sim.cmd.Args[4:8], sim.cmd.ProcessState, sim.out.String())
		default:
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

const apiToken = "scale-test-token"

func newStand(t *testing.T) *stand {
	t.Helper()
	testutil.OK(t, RaiseFileLimit()) // before the broker starts: it inherits the limit
	s := &stand{t: t, repo: t.TempDir()}
	keys := t.TempDir()
	var err error
	s.publisher, err = verify.GenerateKey(nil)
	testutil.OK(t, err)
	testutil.OK(t, verify.WriteKeyPair(filepath.Join(keys, "publisher"), s.publisher))
	s.pubKey = filepath.Join(keys, "publisher.pub")
	rk, err := verify.GenerateKey(nil)
	testutil.OK(t, err)
	testutil.OK(t, verify.WriteKeyPair(filepath.Join(keys, "rollout"), rk))
	s.rolloutPub = filepath.Join(keys, "rollout.pub")
	s.web = nginxtest.Start(t, s.repo)
	s.broker = mqtttest.New(t)
	// docs/fleet.md § Broker settings: the controller's session must not drop
	// a burst; $SYS every second gives the broker's own message count.
	s.broker.Configure("max_queued_messages 0\nmax_inflight_messages 200\nmax_connections -1\nsys_interval 1\n")
	s.broker.Start()
	s.watchBroker()
	s.pg = pgtest.Start(t, false)
	conf, url := s.controllerConfig(filepath.Join(keys, "rollout.key"))
	s.ctl = startControllerProc(t, conf, url)
	return s
}

// publish publishes a tiny model version (two small files, its own bytes);
// channel "" leaves the channel pointer alone.
func (s *stand) publish(version, channel string) string {
	s.t.Helper()
	dir := s.t.TempDir()
	testutil.OK(s.t, os.WriteFile(filepath.Join(dir, "config.json"), fmt.Appendf(nil, `{"version":%q}`, version), 0o644))
	weights := bytes.Repeat([]byte(version), 2048)
	testutil.OK(s.t, os.WriteFile(filepath.Join(dir, "weights.bin"), weights, 0o644))
	_, err := publish.Publish(context.Background(), dir, publish.Options{Repo: s.repo, Model: "demo", Version: version, Channel: channel, Key: s.publisher})
	testutil.OK(s.t, err)
	return s.web.URL + "/demo/manifests/" + version + ".json"
}

func (s *stand) channel() string { return s.web.URL + "/demo/channels/stable.json" }

// controllerConfig writes the controller's config; it returns its path and
// the controller's URL.
func (s *stand) controllerConfig(rolloutKey string) (string, string) {
	dir := s.t.TempDir()
	token := filepath.Join(dir, "api-token")
	testutil.OK(s.t, os.WriteFile(token, []byte(apiToken+"\n"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.OK(s.t, err)
	listen := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf("[platform]\nmqtt_url = %q\n[fleet]\nlisten = %q\nstate_dir = %q\nrollout_key = %q\n"+
		"tick = \"200ms\"\napi_token_file = %q\ndatabase = %q\n",
		s.broker.URL(), listen, filepath.Join(dir, "state"), rolloutKey, token, s.pg.URL())
	path := filepath.Join(dir, "fleet.toml")
	testutil.OK(s.t, os.WriteFile(path, []byte(conf), 0o644))
	return path, "http://" + listen
}

// watchBroker keeps the broker's own counters of what it received ($SYS).
func (s *stand) watchBroker() {
	c := mqtttest.Connect(s.t, s.broker, "scale-sys")
	for topic, into := range map[string]*atomic.Int64{"$SYS/broker/messages/received": &s.brokerIn, "$SYS/broker/publish/messages/received": &s.brokerPub} {
		tok := c.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) {
			if n, err := strconv.ParseInt(string(m.Payload()), 10, 64); err == nil {
				into.Store(n)
			}
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			s.t.Fatalf("subscribe to %s: %v", topic, tok.Error())
		}
	}
}

// controllerProc is `modelslot-fleet fleet serve` running as its own process.
type controllerProc struct {
	t   *testing.T
	cmd *exec.Cmd
	url string
	mu  sync.Mutex
	log []string
}

func startControllerProc(t *testing.T, config, url string) *controllerProc {
	t.Helper()
	bin := testutil.Binary(t, "github.com/modelslot/modelslot/cmd/modelslot-fleet")
	c := &controllerProc{t: t, url: url, cmd: exec.Command(bin, "--config", config, "fleet", "serve")}
	c.cmd.Env = append(os.Environ(), "MODELSLOT_LOG_LEVEL=info")
	stderr, err := c.cmd.StderrPipe()
	testutil.OK(t, err)
	testutil.OK(t, c.cmd.Start())
	ready := make(chan struct{}, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			if c.log = append(c.log, line); len(c.log) > 2000 {
				c.log = append([]string(nil), c.log[1000:]...)
			}
			c.mu.Unlock()
			if strings.Contains(line, "fleet controller ready") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		c.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("fleet serve exited:\n%s", c.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("fleet serve not ready after 60s:\n%s", c.logText())
	}
	return c
}

func (c *controllerProc) logText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log[max(0, len(c.log)-40):], "\n")
}

// apiClient opens a connection per call: the controller closes an idle
// keep-alive connection after its 5 s header timeout, and a test that
// snapshots ten thousand devices between two calls would race that close.
var apiClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

// api calls the controller's JSON API with the token; a GET is tried up to 3
// times (a controller starved of CPU by the simulated fleet may be slow).
func (c *controllerProc) api(method, path string, body, out any) error {
	var err error
	for range 3 {
		if err = c.call(method, path, body, out); err == nil || method != "GET" {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

func (c *controllerProc) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *controllerProc) status(id string) fleet.Status {
	c.t.Helper()
	var s fleet.Status
	if err := c.api("GET", "/v1/rollouts/"+id, nil, &s); err != nil {
		c.t.Fatalf("rollout status: %v\ncontroller log:\n%s", err, c.logText())
	}
	return s
}

// ingested is the controller's own count of events recorded.
func (c *controllerProc) ingested() int64 {
	resp, err := apiClient.Get(c.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "modelslot_fleet_events_ingested_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	return -1
}

// recorded is what the database holds: events per device, and its size.
func (s *stand) recorded() (perDevice map[string]int, total int, size int64) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pg.URL())
	testutil.OK(s.t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT device_id, count(*) FROM events GROUP BY device_id`)
	testutil.OK(s.t, err)
	perDevice = map[string]int{}
	for rows.Next() {
		var id string
		var n int
		testutil.OK(s.t, rows.Scan(&id, &n))
		perDevice[id] = n
		total += n
	}
	testutil.OK(s.t, rows.Err())
	testutil.OK(s.t, conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size))
	return perDevice, total, size
}

// devicesWith lists the devices whose update events (not a refused
// document's rollout_status, which names the target it refused) the
// database holds for target.
func (s *stand) devicesWith(target string) map[string]bool {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.pg.URL())
	testutil.OK(s.t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT DISTINCT device_id FROM events WHERE target_version = $1 AND event <> $2`, target, report.RolloutEventType)
	testutil.OK(s.t, err)
	out := map[string]bool{}
	for rows.Next() {
		var id string
		testutil.OK(s.t, rows.Scan(&id))
		out[id] = true
	}
	testutil.OK(s.t, rows.Err())
	return out
}

// proc is a process tree's CPU seconds (itself, its live children, and the
// children it reaped) and RSS in MiB (itself and its live children).
type proc struct{ cpu, rss float64 }

func procTree(pid int) proc {
	p := procOf(pid, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid || ppid(child) != pid {
			continue
		}
		c := procOf(child, false)
		p.cpu += c.cpu
		p.rss += c.rss
	}
	return p
}

// statFields are the fields of /proc/PID/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func procOf(pid int, reaped bool) proc {
	f := statFields(pid)
	if len(f) < 22 {
		return proc{}
	}
	tick := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 } // USER_HZ
	p := proc{cpu: tick(11) + tick(12)}
	if reaped {
		p.cpu += tick(13) + tick(14)
	}
	pages, _ := strconv.ParseFloat(f[21], 64)
	p.rss = pages * float64(os.Getpagesize()) / (1 << 20)
	return p
}
