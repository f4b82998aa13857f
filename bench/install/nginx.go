package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// nginx is a throwaway nginx (the Debian package) serving root on a loopback
// port: the repository for modelslot, the zstd stream for the pipeline, and
// the casync store and zsync files, so bytes and requests of every tool are
// counted the same way, from one access log. zsync 0.6.2 loops forever against
// Go's file server (bench-baselines.md); nginx is what a user would put in
// front of a repository.
type nginx struct {
	root, dir, url string
	cmd            *exec.Cmd
	marks          atomic.Int64
}

// logFormat is one line per request: status, body bytes sent, request line.
const logFormat = `'$status $body_bytes_sent "$request"'`

func startNginx(dir, root string) (*nginx, error) {
	if _, err := exec.LookPath("nginx"); err != nil {
		return nil, fmt.Errorf("nginx is not installed: run scripts/bench-setup.sh (apt-get install nginx-light): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &nginx{root: root, dir: dir, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	// Run as root, nginx's workers would be nobody and could not read the
	// bench's 0700 work directory or files made 0600 by os.CreateTemp.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`daemon off; %[5]s pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events {}
http { log_format counted %[4]s; access_log %[1]s/access.log counted;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen 127.0.0.1:%[2]d; root %[3]s; } }`, dir, port, root, logFormat, user)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	n.cmd = exec.Command("nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return n, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.stop()
	return nil, fmt.Errorf("nginx did not start; see %s/error.log", dir)
}

// stop shuts nginx down with SIGTERM, which its master passes to its
// worker: SIGKILL would kill the master alone and leave the worker
// running, serving the work directory.
func (n *nginx) stop() {
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
}

// traffic is what nginx served between two marks.
type traffic struct {
	Bytes    int64 // response body bytes
	Requests int64 // requests of any status
	Errors   int64 // of them, answers >= 400
}

// markPrefix is the path of the requests that delimit a measurement in the log.
const markPrefix = "/.bench-mark/"

// mark requests a marker URL (a 404, logged like any request) and waits until
// its line is in the access log, so every request made before it is there too
// (one worker process logs in order), and returns its label.
func (n *nginx) mark() (string, error) {
	label := strconv.FormatInt(n.marks.Add(1), 10)
	resp, err := http.Get(n.url + markPrefix + label)
	if err != nil {
		return "", fmt.Errorf("mark the nginx log: %w", err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines, err := n.logLines()
		if err != nil {
			return "", err
		}
		for _, l := range lines {
			if strings.Contains(l, markPrefix+label+" ") {
				return label, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("mark %s never reached %s/access.log", label, n.dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *nginx) logLines() ([]string, error) {
	f, err := os.Open(filepath.Join(n.dir, "access.log"))
	if err != nil {
		return nil, fmt.Errorf("read the nginx access log: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// measure runs f between two marks and returns what nginx served for it.
func (n *nginx) measure(f func() error) (traffic, error) {
	from, err := n.mark()
	if err != nil {
		return traffic{}, err
	}
	ferr := f()
	to, err := n.mark()
	if err != nil {
		return traffic{}, err
	}
	lines, err := n.logLines()
	if err != nil {
		return traffic{}, err
	}
	t, err := between(lines, from, to)
	if err != nil {
		return traffic{}, err
	}
	return t, ferr
}

// between sums the log lines strictly between the marks from and to.
func between(lines []string, from, to string) (traffic, error) {
	var t traffic
	in := false
	for _, l := range lines {
		if strings.Contains(l, markPrefix) {
			switch {
			case strings.Contains(l, markPrefix+from+" "):
				in = true
			case strings.Contains(l, markPrefix+to+" "):
				return t, nil
			}
			continue
		}
		if !in {
			continue
		}
		status, bytes, err := parseLogLine(l)
		if err != nil {
			return t, err
		}
		t.Requests++
		t.Bytes += bytes
		if status >= 400 {
			t.Errors++
		}
	}
	return t, fmt.Errorf("nginx access log: marks %s..%s not both found", from, to)
}

// parseLogLine reads `status bytes "request"`.
func parseLogLine(l string) (status int, bytes int64, err error) {
	f := strings.SplitN(l, " ", 3)
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("nginx access log line %q: want status, bytes, request", l)
	}
	if status, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("nginx access log line %q: status: %w", l, err)
	}
	if bytes, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("nginx access log line %q: bytes: %w", l, err)
	}
	return status, bytes, nil
}
