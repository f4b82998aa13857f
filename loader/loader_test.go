package loader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

func started(t *testing.T, link string, closed *atomic.Int32, opts Options) (*Loader[*answerModel], context.CancelFunc) {
	t.Helper()
	l := New(link, openAnswer(closed), opts)
	must(t, l.Load(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		l.Close()
	})
	return l, cancel
}

func TestLinkSwapReloadsAndOldModelClosesAfterItsLastLease(t *testing.T) {
	link, _, b := twoSlots(t)
	var closed atomic.Int32
	l, _ := started(t, link, &closed, Options{})
	lease, err := l.Acquire()
	must(t, err)

	swap(t, link, b)
	testutil.WaitFor(t, 5*time.Second, "v2 served", func() bool { return l.Version() == "v2" })
	if closed.Load() != 0 {
		t.Fatal("v1 was closed while a request still held it")
	}
	if got, _ := lease.Slot.ReadFile("answer.json"); !strings.Contains(string(got), "v1") {
		t.Fatalf("the held lease reads %s, want v1's file", got)
	}
	lease.Release()
	lease.Release() // twice is harmless
	if closed.Load() != 1 {
		t.Fatalf("v1 closed %d times after its last lease, want 1", closed.Load())
	}
	fresh, err := l.Acquire()
	must(t, err)
	defer fresh.Release()
	if fresh.Slot.Version != "v2" {
		t.Errorf("new lease got %s", fresh.Slot.Version)
	}
}

func TestModelFailingItsProbeIsNotSwappedIn(t *testing.T) {
	link, _, _ := twoSlots(t)
	bad := filepath.Join(filepath.Dir(link), "slots/bad")
	writeSlot(t, bad, "v3", 5, 3) // answers 5 where its probe expects 3
	var closed atomic.Int32
	l := New(link, openAnswer(&closed), Options{NoWatch: true, NoSignal: true})
	must(t, l.Load(context.Background()))
	defer l.Close()

	swap(t, link, bad)
	err := l.Reload(context.Background())
	if !errors.Is(err, ErrProbe) || !strings.Contains(err.Error(), "still serving the old model") {
		t.Fatalf("reload of a wrong model: %v", err)
	}
	if l.Version() != "v1" || closed.Load() != 1 || !errors.Is(l.LastReloadError(), ErrProbe) {
		t.Fatalf("after a rejected reload: version %s, closed %d, last error %v", l.Version(), closed.Load(), l.LastReloadError())
	}
}

func TestReloadOfTheSameSlotIsANoOpButARefilledSlotReloads(t *testing.T) {
	link, a, _ := twoSlots(t)
	var closed atomic.Int32
	l := New(link, openAnswer(&closed), Options{NoWatch: true, NoSignal: true})
	must(t, l.Load(context.Background()))
	defer l.Close()
	must(t, l.Reload(context.Background()))
	if closed.Load() != 0 {
		t.Fatal("reloading the model already served replaced it")
	}
	writeSlot(t, a, "v3", 3, 3) // the same slot dir, a new manifest
	must(t, l.Reload(context.Background()))
	if l.Version() != "v3" || closed.Load() != 1 {
		t.Fatalf("refilled slot: version %s, closed %d", l.Version(), closed.Load())
	}
}

func TestSIGHUPReloadsWithWatchingOff(t *testing.T) {
	link, _, b := twoSlots(t)
	var closed atomic.Int32
	l, _ := started(t, link, &closed, Options{NoWatch: true})
	swap(t, link, b)
	time.Sleep(200 * time.Millisecond)
	if l.Version() != "v1" {
		t.Fatal("reloaded without a signal while watching is off")
	}
	must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	testutil.WaitFor(t, 5*time.Second, "v2 after SIGHUP", func() bool { return l.Version() == "v2" })
}

func TestFailedFirstLoadNamesTheModel(t *testing.T) {
	link, a, _ := twoSlots(t)
	must(t, os.Remove(filepath.Join(a, "answer.json")))
	var closed atomic.Int32
	err := New(link, openAnswer(&closed), Options{NoSignal: true}).Load(context.Background())
	if err == nil || !strings.Contains(err.Error(), "load model demo v1") {
		t.Fatalf("Load = %v", err)
	}
	l := New(link, openAnswer(&closed), Options{NoSignal: true})
	if _, err := l.Acquire(); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("Acquire before Load = %v", err)
	}
}
