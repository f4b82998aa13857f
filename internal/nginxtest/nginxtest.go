// Package nginxtest serves a directory on a loopback port with a real nginx
// (Debian's package), for tests that need a repository as devices meet it in
// production: a static web server, not Go's. Each server has its own
// configuration, pid file, logs and temp dirs in a temp dir of the test, and
// is stopped when the test ends. The access log records every request's path,
// user agent and status (Requests).
package nginxtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary is where Debian installs nginx.
const Binary = "/usr/sbin/nginx"

// Server is one nginx owned by a test.
type Server struct {
	URL string // http://127.0.0.1:PORT
	dir string
	cmd *exec.Cmd
}

// conf is nginx's configuration: one worker per core, connections enough for
// every simulated device at once, and a short keep-alive so ten thousand idle
// clients do not hold a connection each.
const conf = `daemon off; master_process on; worker_processes auto; worker_rlimit_nofile 65536;
%[4]s
pid %[1]s/nginx.pid; error_log %[1]s/error.log warn;
events { worker_connections 32768; }
http {
  log_format req '$request_uri\t$http_user_agent\t$status';
  access_log %[1]s/access.log req;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  keepalive_timeout 5s; sendfile on; types { application/json json; } default_type application/octet-stream;
  server { listen 127.0.0.1:%[2]d; root %[3]s; }
}
`

// Start serves root until t ends.
func Start(t testing.TB, root string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("nginx is not installed (%v): run scripts/ci-setup.sh as root", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the workers read the test's temp dirs (mode 0700)
	}
	name := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(name, fmt.Appendf(nil, conf, dir, port, root, user), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir}
	s.cmd = exec.Command(Binary, "-c", name, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(s.stop)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return s
		}
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Fatalf("nginx did not listen on port %d:\n%s", port, log)
	return nil
}

// Pid is the master process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

func (s *Server) stop() {
	s.cmd.Process.Signal(os.Interrupt) // SIGINT: fast shutdown, workers included
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// Request is one line of the access log.
type Request struct {
	Path, UserAgent, Status string
}

// Requests reads the access log: every request served so far, in order.
func (s *Server) Requests(t testing.TB) []Request {
	t.Helper()
	f, err := os.Open(filepath.Join(s.dir, "access.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Request
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := strings.Split(sc.Text(), "\t"); len(p) == 3 {
			out = append(out, Request{Path: p[0], UserAgent: p[1], Status: p[2]})
		}
	}
	return out
}
