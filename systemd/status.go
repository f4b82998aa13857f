package systemd

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// MemoryUnknown is the MemoryCurrent systemd reports when it does not account
// the unit's memory (no memory controller for the manager, or nothing running).
const MemoryUnknown = math.MaxUint64

// Where UnitStatus.Memory came from.
const (
	MemoryFromCgroup = "MemoryCurrent" // systemd's own figure for the unit's cgroup
	MemoryFromRSS    = "rss"           // sum of VmRSS of the unit's processes (/proc)
)

// UnitStatus is a snapshot of one unit, read over D-Bus.
type UnitStatus struct {
	Unit        string
	LoadState   string // loaded, not-found, masked…
	ActiveState string // active, reloading, inactive, failed, activating, deactivating
	SubState    string // running, auto-restart, stop-watchdog, start, dead, failed…
	Result      string // success, exit-code, signal, core-dump, watchdog, timeout, start-limit-hit, oom-kill…
	NRestarts   uint32 // automatic restarts since the last explicit start
	MainPID     uint32 // 0 when no main process runs

	// MemoryCurrent is systemd's figure, MemoryUnknown when it has none.
	MemoryCurrent uint64
	// Memory is the best figure known: MemoryCurrent, or else the RSS of the
	// unit's processes. MemorySource says which ("" when neither is known).
	Memory       uint64
	MemorySource string
	ControlGroup string // the unit's cgroup path, as systemd names it
	// InvocationID changes each time the unit is started (not on a manager
	// re-exec): a different one means the unit was started anew.
	InvocationID string
	TriggeredBy  []string // units that start this one (its .socket)
}

// Status reads the unit's state. Properties of a type the unit does not have
// (NRestarts of a .socket) stay zero.
func (m *Manager) Status(ctx context.Context, unit string) (UnitStatus, error) {
	conn, err := m.connection(ctx)
	if err != nil {
		return UnitStatus{}, err
	}
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return UnitStatus{}, fmt.Errorf("read state of %s: %w", unit, err)
	}
	typed, err := conn.GetUnitTypePropertiesContext(ctx, unit, unitType(unit))
	if err != nil {
		return UnitStatus{}, fmt.Errorf("read %s properties of %s: %w", unitType(unit), unit, err)
	}
	st := statusFrom(unit, props, typed)
	st.Memory, st.MemorySource = memoryOf(st)
	return st, nil
}

// statusFrom picks the fields from the Unit and the type-specific interfaces.
func statusFrom(unit string, props, typed map[string]any) UnitStatus {
	return UnitStatus{
		Unit:          unit,
		LoadState:     str(props["LoadState"]),
		ActiveState:   str(props["ActiveState"]),
		SubState:      str(props["SubState"]),
		Result:        str(typed["Result"]),
		NRestarts:     u32(typed["NRestarts"]),
		MainPID:       u32(typed["MainPID"]),
		MemoryCurrent: u64(typed["MemoryCurrent"], MemoryUnknown),
		ControlGroup:  str(typed["ControlGroup"]),
		InvocationID:  hexBytes(props["InvocationID"]),
		TriggeredBy:   strs(props["TriggeredBy"]),
	}
}

func hexBytes(v any) string {
	b, _ := v.([]byte)
	return fmt.Sprintf("%x", b)
}

// memoryOf prefers systemd's figure and falls back to /proc when it has none.
func memoryOf(st UnitStatus) (uint64, string) {
	if st.MemoryCurrent != MemoryUnknown {
		return st.MemoryCurrent, MemoryFromCgroup
	}
	rss, n := ProcessRSS(st.ControlGroup, st.MainPID)
	if n == 0 {
		return 0, ""
	}
	return rss, MemoryFromRSS
}

// unitType is the D-Bus interface suffix of a unit name: a.service → Service.
func unitType(unit string) string {
	i := strings.LastIndexByte(unit, '.')
	if i < 0 || i == len(unit)-1 {
		return "Service"
	}
	t := unit[i+1:]
	return strings.ToUpper(t[:1]) + t[1:]
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func u32(v any) uint32 {
	n, _ := v.(uint32)
	return n
}

func u64(v any, missing uint64) uint64 {
	if n, ok := v.(uint64); ok {
		return n
	}
	return missing
}
