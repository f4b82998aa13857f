package loader

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// A socket passed the way systemd passes it (fd 3, LISTEN_FDS, LISTEN_PID of
// the server) wins over the address. The server is this test binary re-run as
// a child, since fd 3 of the test process itself is taken.
func TestListenTakesTheSocketSystemdPassed(t *testing.T) {
	if os.Getenv("LOADER_LISTEN_CHILD") != "" {
		listenChild(t)
		return
	}
	passed, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer passed.Close()
	f, err := passed.(*net.TCPListener).File()
	must(t, err)
	defer f.Close()
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -test.run '^TestListenTakesTheSocketSystemdPassed$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "LOADER_LISTEN_CHILD=1", "WANT_ADDR="+passed.Addr().String())
	cmd.ExtraFiles = []*os.File{f} // becomes fd 3
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func listenChild(t *testing.T) {
	ln, err := Listen("127.0.0.1:1")
	must(t, err)
	defer ln.Close()
	if got, want := ln.Addr().String(), os.Getenv("WANT_ADDR"); got != want {
		t.Fatalf("Listen = %s, want the passed socket %s", got, want)
	}
	if _, err := Listen(""); err == nil {
		t.Fatal("no socket left and no address, yet Listen succeeded")
	}
}
