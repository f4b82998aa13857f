package simulate

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/modelslot/modelslot/internal/report"
	"github.com/modelslot/modelslot/internal/session"
	"github.com/modelslot/modelslot/slots"
)

// Device states in a Snapshot.
const (
	StateOK      = "ok"      // serving its active version, nothing pending
	StateTrial   = "trial"   // a new version is being confirmed
	StateRestore = "restore" // reverted, the old version not confirmed back yet
	StateNone    = "none"    // nothing installed
)

// DeviceState is one device as its own state files say, read without the
// lock as `modelslot status` reads them.
type DeviceState struct {
	ID      string
	Version string // the active version; "" = none
	State   string
	// Failed is the version of the device's last failure ("" = none).
	Failed string
	// Produced counts the events the device ever queued; Undelivered those
	// the broker has not acknowledged yet.
	Produced, Undelivered int
	// Versions lists the versions in the device's slots.
	Versions []string
}

// Snapshot is the fleet at one moment.
type Snapshot struct {
	Devices []DeviceState
}

// Snapshot reads every device's state.
func (f *Fleet) Snapshot() Snapshot {
	var s Snapshot
	for _, d := range f.devices {
		s.Devices = append(s.Devices, f.state(d))
	}
	return s
}

func (f *Fleet) state(d *Device) DeviceState {
	m := &d.Config.Models[0]
	ds := DeviceState{ID: d.ID, State: StateNone}
	if v, err := slots.OpenView(session.StoreConfig(d.Config, m)); err == nil {
		st := v.State()
		if s := st.Slots[st.Active]; s != nil {
			ds.Version, ds.State = s.Version, StateOK
		}
		for _, name := range slices.Sorted(maps.Keys(st.Slots)) {
			if v := st.Slots[name].Version; v != "" {
				ds.Versions = append(ds.Versions, v)
			}
		}
		switch {
		case st.Trial != nil:
			ds.State = StateTrial
		case st.Restore != nil:
			ds.State = StateRestore
		}
		if st.LastFailure != nil {
			ds.Failed = st.LastFailure.Version
		}
	}
	if o, err := session.OpenOutbox(d.Config, m); err == nil {
		ds.Produced, ds.Undelivered = int(o.Last()), o.Depth(report.SinkMQTT)
	}
	return ds
}

// Counts are the devices per "version/state" ("v2/ok", "v3/trial").
func (s Snapshot) Counts() map[string]int {
	out := map[string]int{}
	for _, d := range s.Devices {
		v := d.Version
		if v == "" {
			v = "-"
		}
		out[v+"/"+d.State]++
	}
	return out
}

// On counts the devices serving version with nothing pending.
func (s Snapshot) On(version string) int {
	n := 0
	for _, d := range s.Devices {
		if d.Version == version && d.State == StateOK {
			n++
		}
	}
	return n
}

// FailedOn counts the devices whose last failure was version.
func (s Snapshot) FailedOn(version string) int {
	n := 0
	for _, d := range s.Devices {
		if d.Failed == version {
			n++
		}
	}
	return n
}

// Events sums the events the devices produced and those not yet delivered.
func (s Snapshot) Events() (produced, undelivered int) {
	for _, d := range s.Devices {
		produced += d.Produced
		undelivered += d.Undelivered
	}
	return produced, undelivered
}

// String is one progress line: devices per version and state, sorted.
func (s Snapshot) String() string {
	c := s.Counts()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c[k]))
	}
	return strings.Join(parts, " ")
}
