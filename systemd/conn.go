package systemd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Scopes of Settings.Scope: which manager runs the inference unit.
const (
	ScopeSystem = "system"
	ScopeUser   = "user"
)

// ErrClosed is returned by calls on a Manager after Close.
var ErrClosed = errors.New("systemd manager connection closed")

// Settings choose the manager, as the [systemd] table of the config does.
type Settings struct {
	// Scope is ScopeSystem (default) or ScopeUser.
	Scope string
	// Bus, when set, is the D-Bus address to dial instead of the scope's default
	// bus: a bus daemon ("unix:path=/run/user/1000/bus") or a manager's private
	// socket ("unix:path=$XDG_RUNTIME_DIR/systemd/private"). An address whose path
	// ends in /systemd/private is a direct connection to the manager, without a bus
	// daemon, so it is not sent Hello.
	Bus string
}

// Manager is a connection to one systemd manager. It redials when the connection
// was lost (the manager re-executed or restarted), so a long confirmation window
// survives `systemctl daemon-reexec`. Safe for concurrent use.
type Manager struct {
	settings Settings
	log      *slog.Logger

	mu     sync.Mutex
	conn   *sddbus.Conn
	closed bool
}

// Connect opens a connection to the manager chosen by s. log may be nil.
func Connect(ctx context.Context, s Settings, log *slog.Logger) (*Manager, error) {
	m, err := New(s, log)
	if err != nil {
		return nil, err
	}
	if _, err := m.connection(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// New is Connect without dialing: the first call that needs the manager dials
// it (and says so if it cannot). For callers that must work while the manager
// is down, and be ready when it is back. Only the settings are checked here.
func New(s Settings, log *slog.Logger) (*Manager, error) {
	if s.Scope == "" {
		s.Scope = ScopeSystem
	}
	if s.Scope != ScopeSystem && s.Scope != ScopeUser {
		return nil, fmt.Errorf("systemd scope %q: use %q or %q", s.Scope, ScopeSystem, ScopeUser)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Manager{settings: s, log: log.With("scope", s.Scope)}, nil
}

// Close closes the connection; later calls fail with ErrClosed. Running Watch
// calls then report ReasonUnreachable after Limits.Unreachable, or end with
// their contexts.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
}

// connection returns a live connection, dialing a new one if needed.
func (m *Manager) connection(ctx context.Context) (*sddbus.Conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if m.conn != nil && m.conn.Connected() {
		return m.conn, nil
	}
	if m.conn != nil {
		m.log.Warn("systemd connection lost, dialing again")
		m.conn.Close()
		m.conn = nil
	}
	conn, err := m.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the %s systemd manager%s: %w; check that it runs and that [systemd] scope/bus are right",
			m.settings.Scope, m.busHint(), err)
	}
	m.conn = conn
	return conn, nil
}

func (m *Manager) busHint() string {
	if m.settings.Bus == "" {
		return ""
	}
	return " at " + m.settings.Bus
}

// dial opens a connection within ctx. Dialing a manager that is stopped or
// hung connects (the socket's backlog accepts) and then blocks in the
// authentication, which takes no context: the caller stops waiting when ctx
// ends, and a connection that comes later is closed.
func (m *Manager) dial(ctx context.Context) (*sddbus.Conn, error) {
	type dialed struct {
		conn *sddbus.Conn
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		conn, err := m.open(ctx)
		ch <- dialed{conn, err}
	}()
	select {
	case d := <-ch:
		return d.conn, d.err
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				d.conn.Close()
			}
		}()
		return nil, fmt.Errorf("the manager did not answer: %w", ctx.Err())
	}
}

// open dials the scope's default bus, or the Bus address through the same
// go-systemd connection type, so tests exercise production's code.
func (m *Manager) open(ctx context.Context) (*sddbus.Conn, error) {
	// godbus closes a connection when the context it was dialed with ends; this
	// one outlives the call that happened to dial it, until Close.
	ctx = context.WithoutCancel(ctx)
	if m.settings.Bus != "" {
		return sddbus.NewConnection(func() (*godbus.Conn, error) { return dialBus(ctx, m.settings.Bus) })
	}
	if m.settings.Scope == ScopeUser {
		return sddbus.NewUserConnectionContext(ctx)
	}
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil && os.Geteuid() == 0 {
		// No system bus daemon (minimal images): root may talk to PID 1 directly.
		if direct, derr := sddbus.NewSystemdConnectionContext(ctx); derr == nil {
			return direct, nil
		}
	}
	return conn, err
}

// dialBus dials address and authenticates with our uid; Hello only on a bus.
func dialBus(ctx context.Context, address string) (*godbus.Conn, error) {
	conn, err := godbus.Dial(address, godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	auth := []godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}
	if err := conn.Auth(auth); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if !isDirect(address) {
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("hello: %w", err)
		}
	}
	return conn, nil
}

// isDirect tells a manager's private socket from a bus daemon's socket.
func isDirect(address string) bool {
	return strings.HasSuffix(address, "/systemd/private")
}
