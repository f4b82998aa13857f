// Package nginxtest starts a real nginx (Debian's package) serving a
// directory on a loopback port for tests, with its own configuration, temp
// paths and access log in a temp directory: a static web server as a
// repository or CDN origin is, Range requests and all, without a fake. The
// access log is read back so a test can assert on the requests the server
// saw (paths, Range headers, user agents, statuses, bytes sent). It is sized
// for a simulated fleet: every worker a core, connections enough for ten
// thousand devices at once, a short keep-alive so idle ones hold nothing.
package nginxtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// Server is one nginx master process owned by a test; it stops at cleanup.
type Server struct {
	URL  string // http://127.0.0.1:<port>, serving the root directory
	dir  string
	cmd  *exec.Cmd
	logs string
}

// Request is one line of the access log.
type Request struct {
	Method    string
	Path      string
	Range     string // the Range header, "" when none
	Status    int
	Bytes     int64 // body bytes sent
	UserAgent string
}

// logFormat is tab-separated so a path or header never splits a field.
const logFormat = `'$request_method\t$uri\t$http_range\t$status\t$body_bytes_sent\t$http_user_agent'`

// Start serves root on a free loopback port until the test ends.
func Start(t testing.TB, root string) *Server {
	t.Helper()
	bin := testutil.NeedTool(t, "nginx", "nginx")
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, logs: filepath.Join(dir, "access.log")}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(config(dir, root, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(s.stop)
	testutil.WaitFor(t, 10*time.Second, "nginx to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

func config(dir, root string, port int) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // the workers must read the test's 0700 temp dirs
	}
	tmp := func(name string) string { return filepath.Join(dir, name) }
	return fmt.Sprintf(`%sdaemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 65536;
pid %s;
error_log %s warn;
events { worker_connections 32768; }
http {
	log_format t %s;
	access_log %s t;
	client_body_temp_path %s;
	proxy_temp_path %s;
	fastcgi_temp_path %s;
	uwsgi_temp_path %s;
	scgi_temp_path %s;
	types { application/json json; }
	default_type application/octet-stream;
	sendfile on;
	keepalive_requests 10000;
	keepalive_timeout 5s;
	server {
		listen 127.0.0.1:%d;
		root %s;
		location / { }
	}
}
`, user, tmp("nginx.pid"), tmp("error.log"), logFormat, tmp("access.log"),
		tmp("body"), tmp("proxy"), tmp("fastcgi"), tmp("uwsgi"), tmp("scgi"), port, root)
}

// Requests reads the access log: every request answered so far, in order.
// nginx logs a request just after its response, so it first waits for the log
// to stop growing (50 ms, at most 2 s).
func (s *Server) Requests() []Request {
	s.settle()
	f, err := os.Open(s.logs)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 6 {
			continue
		}
		st, _ := strconv.Atoi(p[3])
		n, _ := strconv.ParseInt(p[4], 10, 64)
		r := p[2]
		if r == "-" {
			r = ""
		}
		ua := p[5]
		if ua == "-" {
			ua = ""
		}
		out = append(out, Request{Method: p[0], Path: p[1], Range: r, Status: st, Bytes: n, UserAgent: ua})
	}
	return out
}

func (s *Server) settle() {
	last := int64(-1)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		fi, err := os.Stat(s.logs)
		if err == nil && fi.Size() == last {
			return
		}
		if err == nil {
			last = fi.Size()
		}
	}
}

// Under returns the requests whose path contains sub.
func (s *Server) Under(sub string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if strings.Contains(r.Path, sub) {
			out = append(out, r)
		}
	}
	return out
}

// Pid is the nginx master's process id (for CPU and memory figures).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// stop ends the master (and its worker) and waits for it.
func (s *Server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt) // SIGINT: nginx's fast shutdown
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}
