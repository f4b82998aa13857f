// Package pgtest runs a throwaway PostgreSQL cluster (Debian's package) for a
// test: initdb in a fresh temp dir, pg_ctl start on a free loopback port, and,
// when the test ends, pg_ctl stop by its data dir and removal of the dir. As
// root, the server runs as the package's postgres user (initdb refuses root).
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Bin is where Debian 12 installs PostgreSQL 15's server programs.
var Bin = "/usr/lib/postgresql/15/bin"

// Cluster is one running server owned by a test.
type Cluster struct {
	Port int
	dir  string
	t    testing.TB
}

// Start makes and starts a cluster; it is stopped and removed when t ends.
// fsync stays on unless fast is set: a test that claims the controller's
// database survives a kill must run with it on.
func Start(t testing.TB, fast bool) *Cluster {
	t.Helper()
	if _, err := os.Stat(filepath.Join(Bin, "initdb")); err != nil {
		t.Fatalf("PostgreSQL is not installed (%v): run scripts/ci-setup.sh as root", err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{dir: dir, t: t, Port: freePort(t)}
	t.Cleanup(c.stop)
	if err := c.chown(); err != nil {
		t.Fatal(err)
	}
	c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync")
	opts := fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1", dir, c.Port)
	if fast {
		opts += " -c fsync=off"
	}
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "start", "-o", opts)
	return c
}

// URL is a pgx connection URL for the postgres database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

// Kill stops the server at once (SIGKILL-like immediate shutdown), for tests of
// a database that goes away; Restart brings it back on the same port.
func (c *Cluster) Kill() { c.run("pg_ctl", "-D", c.data(), "-w", "stop", "-m", "immediate") }

// Restart starts the server again after Kill.
func (c *Cluster) Restart() {
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start",
		"-o", fmt.Sprintf("-k %s -p %d -c listen_addresses=127.0.0.1", c.dir, c.Port))
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(Bin, prog), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(Bin, prog)}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", prog, args, err, out, log)
	}
}

func (c *Cluster) chown() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgtest: %w (the postgresql package makes this user)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(c.dir, uid, gid)
}

// stop stops the server by its data dir (never by process name: other tests'
// servers run beside it) and removes the dir.
func (c *Cluster) stop() {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		cmd := exec.Command(filepath.Join(Bin, "pg_ctl"), "-D", c.data(), "-w", "stop", "-m", "fast")
		if os.Geteuid() == 0 {
			cmd = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(Bin, "pg_ctl"), "-D", c.data(), "-w", "stop", "-m", "fast")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			c.t.Logf("pgtest: stop: %v\n%s", err, out)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.t.Logf("pgtest: remove %s: %v", c.dir, err)
	}
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Pid is the postmaster's process id (its backends are its children), read
// from postmaster.pid; 0 when the server is not running.
func (c *Cluster) Pid() int {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
