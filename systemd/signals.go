package systemd

import (
	"context"
	"os"
	"strconv"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

const (
	propertiesChanged = "org.freedesktop.DBus.Properties.PropertiesChanged"
	unitPathPrefix    = "/org/freedesktop/systemd1/unit/"
)

// unitSignals delivers the properties that changed on one unit, of every
// interface: go-systemd's own subscriber forwards only the Unit interface, and
// Result lives on Service. A nil *unitSignals or a nil channel means "no signals":
// the watch then relies on polling alone.
type unitSignals struct {
	conn *godbus.Conn
	ch   chan propChange
	lost bool // the connection closed under us: subscribe again
}

// propChange is one PropertiesChanged signal's changed values.
type propChange map[string]godbus.Variant

// subscribeTimeout bounds setting up signals; polling works without them.
const subscribeTimeout = 2 * time.Second

// subscribe opens a connection of its own (go-systemd's Conn has room for a
// single properties subscriber) and asks the manager for signals.
func (m *Manager) subscribe(ctx context.Context, unit string) *unitSignals {
	ctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	conn, err := m.dialRaw(context.WithoutCancel(ctx))
	if err != nil {
		m.log.Debug("no D-Bus signals, polling only", "unit", unit, "err", err)
		return &unitSignals{}
	}
	path := godbus.ObjectPath(unitPathPrefix + sddbus.PathBusEscape(unit))
	raw := make(chan *godbus.Signal, 64)
	conn.Signal(raw)
	s := &unitSignals{conn: conn, ch: make(chan propChange, 64)}
	go s.forward(raw, path)
	// A manager sends every signal to a direct connection unasked, and (systemd
	// 252) never answers a Subscribe that is the first call on one. On a bus
	// daemon, signals come only for a match and after Subscribe.
	if isDirect(m.settings.Bus) {
		return s
	}
	err = conn.AddMatchSignalContext(ctx, godbus.WithMatchObjectPath(path),
		godbus.WithMatchInterface("org.freedesktop.DBus.Properties"), godbus.WithMatchMember("PropertiesChanged"))
	if err == nil {
		manager := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
		err = manager.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Err
	}
	if err != nil {
		m.log.Debug("no D-Bus signals, polling only", "unit", unit, "err", err)
		s.close()
		return &unitSignals{}
	}
	return s
}

// forward passes on the unit's changes until the connection closes. It drops a
// change rather than block: the next poll reads the state anyway.
func (s *unitSignals) forward(raw <-chan *godbus.Signal, path godbus.ObjectPath) {
	defer close(s.ch)
	for sig := range raw {
		if sig.Path != path || sig.Name != propertiesChanged || len(sig.Body) < 2 {
			continue
		}
		changed, ok := sig.Body[1].(map[string]godbus.Variant)
		if !ok {
			continue
		}
		select {
		case s.ch <- propChange(changed):
		default:
		}
	}
}

func (s *unitSignals) updates() <-chan propChange { return s.ch }

func (s *unitSignals) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

// applyTo copies the changed values that a UnitStatus holds into st.
func (c propChange) applyTo(st *UnitStatus) {
	for name, v := range c {
		switch name {
		case "ActiveState":
			st.ActiveState = str(v.Value())
		case "SubState":
			st.SubState = str(v.Value())
		case "Result":
			st.Result = str(v.Value())
		case "NRestarts":
			st.NRestarts = u32(v.Value())
		case "MainPID":
			st.MainPID = u32(v.Value())
		}
	}
}

// dialRaw opens a plain godbus connection to the same manager as m's.
func (m *Manager) dialRaw(ctx context.Context) (*godbus.Conn, error) {
	if m.settings.Bus != "" {
		return dialBus(ctx, m.settings.Bus)
	}
	open := godbus.SystemBusPrivate
	if m.settings.Scope == ScopeUser {
		open = godbus.SessionBusPrivate
	}
	conn, err := open(godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	auth := []godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}
	if err := conn.Auth(auth); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
