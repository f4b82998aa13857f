package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/systemdtest"
)

// testbed is a private manager, a Manager connected to it the way production
// connects (Settings.Bus), and the test service binary.
type testbed struct {
	h   *systemdtest.Manager
	m   *Manager
	svc string
}

// Tests with a testbed run in parallel: they mostly wait for timers, and each has
// a manager of its own.
func newTestbed(t *testing.T) *testbed {
	t.Helper()
	t.Parallel()
	h := systemdtest.Start(t)
	svc := systemdtest.BuildService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Connect(ctx, Settings{Scope: ScopeUser, Bus: h.BusAddress()}, testLogger(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(m.Close)
	return &testbed{h: h, m: m, svc: svc}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// unit writes NAME with a Type=notify service running the test service with
// args, plus extra [Service] lines, and returns NAME. Start limits are off unless
// extra sets them; core dumps are off so a watchdog kill is quick.
func (b *testbed) unit(t *testing.T, name, args string, extra ...string) string {
	t.Helper()
	unitLines, serviceLines := []string{"StartLimitIntervalSec=0"}, []string{}
	for _, line := range extra {
		if strings.HasPrefix(line, "StartLimit") {
			unitLines = append(unitLines, line)
		} else {
			serviceLines = append(serviceLines, line)
		}
	}
	text := fmt.Sprintf("[Unit]\n%s\n[Service]\nType=notify\nLimitCORE=0\nExecStart=%s %s\n%s\n",
		strings.Join(unitLines, "\n"), b.svc, args, strings.Join(serviceLines, "\n"))
	b.h.WriteUnit(t, name, text)
	return name
}

// ctx is a context for one step of a test, cancelled at the test's end.
func stepCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// failureOf fails the test unless err is a *Failure with the wanted reason.
func failureOf(t *testing.T, err error, want Reason) *Failure {
	t.Helper()
	f, ok := err.(*Failure)
	if !ok {
		t.Fatalf("error = %v (%T), want a *Failure with reason %s", err, err, want)
	}
	if f.Reason != want {
		t.Fatalf("reason = %s (%s), want %s", f.Reason, f.Detail, want)
	}
	return f
}

// firstFailure waits for the watch's verdict.
func firstFailure(t *testing.T, ch <-chan *Failure, within time.Duration) *Failure {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(within):
		t.Fatalf("no verdict from Watch within %s", within)
		return nil
	}
}
