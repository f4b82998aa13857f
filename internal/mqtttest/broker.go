// Package mqtttest starts a real mosquitto broker (Debian's package) on a
// loopback port for tests, and can stop and restart it on the same port to
// simulate a platform that goes away and comes back.
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Broker is one mosquitto process owned by a test.
type Broker struct {
	t      *testing.T
	Port   int
	CAFile string // the CA of a secure broker (NewSecure); "" for a plain one
	conf   string
	scheme string // "mqtt" or "mqtts"
	cmd    *exec.Cmd

	clientCerts map[string][2]string // user → certificate and key files (NewSecure)
}

// Binary is where Debian installs mosquitto.
const Binary = "/usr/sbin/mosquitto"

// New prepares a broker on a free loopback port without starting it.
func New(t *testing.T) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("mosquitto is not installed (%v): run scripts/ci-setup.sh as root", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := &Broker{t: t, Port: port, conf: filepath.Join(t.TempDir(), "mosquitto.conf"), scheme: "mqtt"}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n", port)
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// Configure adds lines to the broker's configuration; call it before Start.
func (b *Broker) Configure(lines string) {
	b.t.Helper()
	f, err := os.OpenFile(b.conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		b.t.Fatal(err)
	}
}

// Start launches the broker and waits until it accepts connections.
func Start(t *testing.T) *Broker {
	b := New(t)
	b.Start()
	return b
}

// URL is the broker's address in the config's form.
func (b *Broker) URL() string { return fmt.Sprintf("%s://127.0.0.1:%d", b.scheme, b.Port) }

// Start (re)starts the broker on its port.
func (b *Broker) Start() {
	b.t.Helper()
	b.cmd = exec.Command(Binary, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("mosquitto did not listen on port %d", b.Port)
}

// Stop kills the broker (as a crash or network loss would) and waits for it.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// Pid is the running broker's process id (for CPU and memory figures), 0 when
// it is stopped.
func (b *Broker) Pid() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}
