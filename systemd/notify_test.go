package systemd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// notifySocket listens where NOTIFY_SOCKET points and returns what arrives.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

func TestNotifyIsNoOpOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	for _, f := range []func() error{NotifyReady, NotifyWatchdog, NotifyStopping, func() error { return NotifyStatus("x") }} {
		if err := f(); err != nil {
			t.Errorf("without NOTIFY_SOCKET: %v", err)
		}
	}
	if err := RunWatchdog(context.Background(), nil); err != nil {
		t.Errorf("RunWatchdog without a watchdog: %v", err)
	}
}

func TestNotifySendsStates(t *testing.T) {
	got := notifySocket(t)
	if err := NotifyReady(); err != nil {
		t.Fatal(err)
	}
	if err := NotifyStatus("installing v2"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"READY=1", "STATUS=installing v2"} {
		select {
		case msg := <-got:
			if msg != want {
				t.Errorf("got %q, want %q", msg, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no %q", want)
		}
	}
}

func TestRunWatchdogPetsOnlyWhileAlive(t *testing.T) {
	got := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	for _, alive := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		err := RunWatchdog(ctx, func() bool { return alive })
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		pets := 0
		for _, msg := range drain(got) {
			if msg != "WATCHDOG=1" {
				t.Errorf("got %q, want WATCHDOG=1", msg)
			}
			pets++
		}
		if alive && pets < 4 || !alive && pets != 0 {
			t.Errorf("alive=%v: %d pets in 400ms at a 50ms interval", alive, pets)
		}
	}
}

// drain returns what arrives on ch until it is quiet for 100ms.
func drain(ch <-chan string) []string {
	var msgs []string
	for {
		select {
		case msg := <-ch:
			msgs = append(msgs, msg)
		case <-time.After(100 * time.Millisecond):
			return msgs
		}
	}
}
