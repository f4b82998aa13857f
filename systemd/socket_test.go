package systemd

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// With a .socket in front (the demo's layout), hitting the service's start limit
// fails the socket too and closes its port; recovery is ResetFailed on both and
// starting the socket again.
func TestStartLimitWithSocketRecoversByResettingBoth(t *testing.T) {
	b := newTestbed(t)
	svc, sock := b.socketActivated(t)
	ctx := stepCtx(t, 15*time.Second)
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		err = b.m.Restart(ctx, svc)
	}
	if !errors.Is(err, ErrStartLimitHit) {
		t.Fatalf("restarts: %v, want ErrStartLimitHit", err)
	}
	st, err := b.m.Status(ctx, "demo.socket")
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != "failed" || st.Result != "service-start-limit-hit" {
		t.Errorf("socket after the limit: %s result %s, want failed by service-start-limit-hit", st.ActiveState, st.Result)
	}
	for _, unit := range []string{svc, "demo.socket"} {
		if err := b.m.ResetFailed(ctx, unit); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.m.Start(ctx, "demo.socket"); err != nil {
		t.Fatalf("start socket again: %v", err)
	}
	if err := b.m.Restart(ctx, svc); err != nil {
		t.Fatalf("restart after reset: %v", err)
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		t.Fatalf("socket closed after recovery: %v", err)
	}
	conn.Close()
}

// socketActivated writes demo.service (a start limit of 2 in 60 s) behind
// demo.socket, a unix socket in the manager's runtime dir, and starts the
// socket: the demo's layout.
func (b *testbed) socketActivated(t *testing.T) (svc, sock string) {
	t.Helper()
	sock = filepath.Join(b.h.RuntimeDir, "demo.sock")
	b.h.WriteUnit(t, "demo.socket", fmt.Sprintf("[Socket]\nListenStream=%s\n", sock))
	svc = b.unit(t, "demo.service", "", "StartLimitBurst=2", "StartLimitIntervalSec=60")
	if err := b.m.Start(stepCtx(t, 15*time.Second), "demo.socket"); err != nil {
		t.Fatalf("start socket: %v", err)
	}
	return svc, sock
}
