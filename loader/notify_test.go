package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// notifySocket listens where systemd would and returns received messages.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return msgs
}

func next(t *testing.T, msgs <-chan string, skipWatchdog bool) string {
	t.Helper()
	for {
		select {
		case m := <-msgs:
			if skipWatchdog && m == "WATCHDOG=1\n" {
				continue
			}
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no sd_notify message")
		}
	}
}

func TestNotifiesReadyThenReloadingAndReadyWithTheVersion(t *testing.T) {
	msgs := notifySocket(t)
	link, _, b := twoSlots(t)
	var closed atomic.Int32
	l := New(link, openAnswer(&closed), Options{NoWatch: true, NoSignal: true})
	must(t, l.Load(context.Background()))
	defer l.Close()
	if m := next(t, msgs, false); !strings.HasPrefix(m, "READY=1\nSTATUS=serving demo v1") {
		t.Fatalf("after load: %q", m)
	}
	swap(t, link, b)
	must(t, l.Reload(context.Background()))
	if m := next(t, msgs, false); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("reload start: %q", m)
	}
	if m := next(t, msgs, false); !strings.HasPrefix(m, "READY=1\nSTATUS=serving demo v2") {
		t.Fatalf("reload end: %q", m)
	}
}

// A server whose liveness check fails or hangs must stop pinging, so that
// systemd's watchdog kills it; it pings again once alive.
func TestWatchdogPingsOnlyWhileTheServerIsAlive(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	var mode atomic.Int32 // 0 alive, 1 failing, 2 hanging
	alive := func(ctx context.Context) error {
		switch mode.Load() {
		case 1:
			return errors.New("not serving")
		case 2:
			select {} // a hung serving path never returns
		}
		return nil
	}
	link, _, _ := twoSlots(t)
	var closed atomic.Int32
	started(t, link, &closed, Options{NoWatch: true, NoSignal: true, Alive: alive})
	next(t, msgs, false) // READY
	if m := next(t, msgs, false); m != "WATCHDOG=1\n" {
		t.Fatalf("want a ping, got %q", m)
	}
	quiet := func(what string) {
		t.Helper()
		time.Sleep(60 * time.Millisecond) // a ping already on its way may land
		drain(msgs)
		select {
		case got := <-msgs:
			t.Fatalf("%s: pinged (%q)", what, got)
		case <-time.After(300 * time.Millisecond):
		}
	}
	mode.Store(1)
	quiet("check failing")
	mode.Store(0)
	if m := next(t, msgs, false); m != "WATCHDOG=1\n" {
		t.Fatalf("alive again: %q", m)
	}
	mode.Store(2)
	quiet("check hanging") // and it stays so: a hung server is not revived
}

func drain(c <-chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
