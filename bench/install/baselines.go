package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The zsync and casync baselines of measurement 2, on the same pair of files,
// served by nginx on loopback (zsync 0.6.2 loops forever against Go's file
// server: bench-baselines.md). Bytes on the wire are summed from nginx's access
// log. A tool that is not installed is reported as skipped.

// nginx is a throwaway nginx serving root on a loopback port.
type nginx struct {
	root, dir, url string
	cmd            *exec.Cmd
}

func startNginx(dir, root string) (*nginx, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &nginx{root: root, dir: dir, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	conf := fmt.Sprintf(`daemon off; pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events {}
http { log_format bytes '$body_bytes_sent'; access_log %[1]s/access.log bytes;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen 127.0.0.1:%[2]d; root %[3]s; } }`, dir, port, root)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	n.cmd = exec.Command("nginx", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	for range 50 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return n, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.stop()
	return nil, fmt.Errorf("nginx did not start; see %s/error.log", dir)
}

func (n *nginx) stop() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

// served sums and resets the access log: bytes sent since the last call.
func (n *nginx) served() int64 {
	name := filepath.Join(n.dir, "access.log")
	f, err := os.Open(name)
	if err != nil {
		return 0
	}
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, _ := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		total += v
	}
	f.Close()
	os.Truncate(name, 0)
	return total
}

// baselines runs zsync and casync for the update old → new and prints their
// bytes on the wire against raw, the changed bytes.
func (b *bench) baselines(old, new string, raw int64) {
	if _, err := exec.LookPath("nginx"); err != nil {
		fmt.Println("   zsync, casync: skipped (nginx is not installed)")
		return
	}
	web := filepath.Join(b.dir, "web")
	os.MkdirAll(web, 0o755)
	if err := os.Link(new, filepath.Join(web, "new.bin")); err != nil {
		fmt.Println("   zsync, casync: skipped:", err)
		return
	}
	n, err := startNginx(b.dir, web)
	if err != nil {
		fmt.Println("   zsync, casync: skipped:", err)
		return
	}
	defer n.stop()
	for _, tool := range []struct {
		name string
		run  func(*nginx, string, string) error
	}{{"zsync", runZsync}, {"casync", runCasync}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			fmt.Printf("   %s: skipped (not installed)\n", tool.name)
			continue
		}
		n.served()
		if err := tool.run(n, web, old); err != nil {
			fmt.Printf("   %s: failed: %v\n", tool.name, err)
			continue
		}
		wire := n.served()
		fmt.Printf("   %s: %.2f MB on the wire, %.3fx the changed bytes\n", tool.name, float64(wire)/1e6, float64(wire)/float64(raw))
	}
}

// run runs a baseline command bounded by a timeout: a tool that loops must not
// hang the bench.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func runZsync(n *nginx, web, old string) error {
	if err := run("zsyncmake", "-u", n.url+"/new.bin", "-o", filepath.Join(web, "new.zsync"), filepath.Join(web, "new.bin")); err != nil {
		return err
	}
	out := filepath.Join(n.dir, "zsync.out")
	defer os.Remove(out)
	return run("zsync", "-q", "-i", old, "-o", out, n.url+"/new.zsync")
}

func runCasync(n *nginx, web, old string) error {
	if err := run("casync", "make", "--store="+filepath.Join(web, "store"), filepath.Join(web, "new.caibx"), filepath.Join(web, "new.bin")); err != nil {
		return err
	}
	out := filepath.Join(n.dir, "casync.out")
	defer os.Remove(out)
	return run("casync", "extract", "--store="+n.url+"/store", "--seed="+old, n.url+"/new.caibx", out)
}
