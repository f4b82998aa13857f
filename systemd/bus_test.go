package systemd

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/systemdtest"
	"github.com/modelslot/modelslot/internal/testutil"
)

// The manager socket-activates a session bus daemon on $XDG_RUNTIME_DIR/bus when
// dbus-user-session is installed; through it, Connect takes the Hello path, and
// with no Bus set, the production default (NewUserConnectionContext).
func TestUserScopeThroughSessionBus(t *testing.T) {
	testutil.NeedTool(t, "dbus-daemon", "dbus-user-session")
	h := systemdtest.Start(t)
	svc := systemdtest.BuildService(t)
	h.WriteUnit(t, "hang.service", "[Service]\nType=notify\nLimitCORE=0\nWatchdogSec=1\nRestart=on-failure\nRestartSec=100ms\nExecStart="+svc+" -watchdog-for 300ms\n")
	bus := "unix:path=" + filepath.Join(h.RuntimeDir, "bus")
	for name, s := range map[string]Settings{
		"bus address": {Scope: ScopeUser, Bus: bus},
		"default":     {Scope: ScopeUser},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := Connect(ctx, s, testLogger(t))
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			defer m.Close()
			if err := m.Restart(ctx, "hang.service"); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			f := firstFailure(t, m.Watch(ctx, "hang.service", Limits{}), 10*time.Second)
			if f == nil || f.Reason != ReasonWatchdog {
				t.Fatalf("failure = %+v, want %s", f, ReasonWatchdog)
			}
		})
	}
}

func TestConnectRejectsUnknownScope(t *testing.T) {
	if _, err := Connect(context.Background(), Settings{Scope: "session"}, nil); err == nil {
		t.Fatal("scope \"session\" accepted")
	}
}

func TestConnectToMissingBusSaysWhatToCheck(t *testing.T) {
	_, err := Connect(context.Background(), Settings{Scope: ScopeUser, Bus: "unix:path=" + filepath.Join(t.TempDir(), "none")}, nil)
	if err == nil {
		t.Fatal("connected to nothing")
	}
	t.Log(err)
}
