package systemd

import (
	"errors"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

func TestObserveTellsReasons(t *testing.T) {
	running := UnitStatus{Unit: "u.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Result: "success"}
	with := func(f func(*UnitStatus)) UnitStatus { s := running; f(&s); return s }
	t0 := time.Unix(1000, 0)
	tests := map[string]struct {
		prior []UnitStatus // observed before, at t0
		now   UnitStatus
		after time.Duration // since the watch began
		lim   Limits
		want  Reason // "" = healthy
	}{
		"running":                   {now: running},
		"reloading":                 {prior: []UnitStatus{running}, now: with(func(s *UnitStatus) { s.ActiveState = "reloading" })},
		"watchdog result":           {now: with(func(s *UnitStatus) { s.Result = "watchdog" }), want: ReasonWatchdog},
		"stop-watchdog":             {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState = "deactivating", "stop-watchdog" }), want: ReasonWatchdog},
		"auto-restart after crash":  {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState, s.Result = "activating", "auto-restart", "exit-code" }), want: ReasonCrashLoop},
		"auto-restart, watchdog":    {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState, s.Result = "activating", "auto-restart", "watchdog" }), want: ReasonWatchdog},
		"restarted between polls":   {prior: []UnitStatus{running}, now: with(func(s *UnitStatus) { s.NRestarts = 1 }), want: ReasonCrashLoop},
		"restart count at start":    {now: with(func(s *UnitStatus) { s.NRestarts = 3 })},
		"explicit restart resets":   {prior: []UnitStatus{with(func(s *UnitStatus) { s.NRestarts = 2 })}, now: running},
		"failed":                    {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState, s.Result = "failed", "failed", "exit-code" }), want: ReasonCrashLoop},
		"failed by start timeout":   {now: with(func(s *UnitStatus) { s.ActiveState, s.Result = "failed", "timeout" }), want: ReasonStartTimeout},
		"oom killed":                {now: with(func(s *UnitStatus) { s.ActiveState, s.Result = "failed", "oom-kill" }), want: ReasonMemory},
		"stopped after active":      {prior: []UnitStatus{running}, now: with(func(s *UnitStatus) { s.ActiveState, s.SubState = "inactive", "dead" }), want: ReasonCrashLoop},
		"activating within limit":   {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState = "activating", "start" }), after: time.Second, lim: Limits{StartTimeout: 2 * time.Second}},
		"activating past limit":     {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState = "activating", "start" }), after: 3 * time.Second, lim: Limits{StartTimeout: 2 * time.Second}, want: ReasonStartTimeout},
		"inactive before its job":   {now: with(func(s *UnitStatus) { s.ActiveState, s.SubState = "inactive", "dead" }), lim: Limits{StartTimeout: time.Second}},
		"not active, no start time": {now: with(func(s *UnitStatus) { s.ActiveState = "activating" }), after: time.Millisecond, want: ReasonStartTimeout},
		"not found":                 {now: with(func(s *UnitStatus) { s.LoadState = "not-found" }), want: ReasonCrashLoop},
		"memory under":              {now: with(func(s *UnitStatus) { s.Memory, s.MemorySource = 10, MemoryFromRSS }), lim: Limits{MaxMemory: 100}},
		"memory over":               {now: with(func(s *UnitStatus) { s.Memory, s.MemorySource = 101, MemoryFromCgroup }), lim: Limits{MaxMemory: 100}, want: ReasonMemory},
		"memory unknown":            {now: with(func(s *UnitStatus) { s.Memory, s.MemoryCurrent = 0, MemoryUnknown }), lim: Limits{MaxMemory: 100}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			w := &watchState{since: t0}
			for _, st := range tt.prior {
				if f := w.observe(st, t0, tt.lim); f != nil {
					t.Fatalf("prior status judged %s", f.Reason)
				}
			}
			f := w.observe(tt.now, t0.Add(tt.after), tt.lim)
			var got Reason
			if f != nil {
				got = f.Reason
				if f.Unit != "u.service" || f.Detail == "" {
					t.Errorf("failure lacks unit or detail: %+v", f)
				}
			}
			if got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDuringJobOnlyCrashesAreVerdicts(t *testing.T) {
	steps := []struct {
		st   UnitStatus
		want Reason
	}{
		{UnitStatus{ActiveState: "deactivating", SubState: "stop-sigterm", NRestarts: 2}, ""},
		{UnitStatus{ActiveState: "activating", SubState: "start", NRestarts: 0}, ""}, // explicit restart reset it
		{UnitStatus{ActiveState: "activating", SubState: "start", NRestarts: 0}, ""},
		{UnitStatus{ActiveState: "activating", SubState: "start", NRestarts: 1}, ReasonCrashLoop},
	}
	var w watchState
	for i, step := range steps {
		var got Reason
		if f := w.duringJob(step.st); f != nil {
			got = f.Reason
		}
		if got != step.want {
			t.Errorf("step %d: %q, want %q", i, got, step.want)
		}
	}
	var fresh watchState
	if f := fresh.duringJob(UnitStatus{ActiveState: "activating", SubState: "auto-restart", Result: "watchdog"}); f == nil || f.Reason != ReasonWatchdog {
		t.Errorf("auto-restart after a watchdog kill: %+v", f)
	}
}

func TestJobErrorSaysHowToRecoverFromStartLimit(t *testing.T) {
	err := error(&Failure{Unit: "a.service", Reason: ReasonCrashLoop,
		Err: &JobError{Unit: "a.service", Job: "restart", Result: "failed", UnitResult: "start-limit-hit"}})
	if !errors.Is(err, ErrStartLimitHit) {
		t.Error("errors.Is(ErrStartLimitHit) = false")
	}
	if errors.Is(&JobError{Result: "failed", UnitResult: "exit-code"}, ErrStartLimitHit) {
		t.Error("an exit-code failure claims to be a start-limit hit")
	}
}

func TestUnitType(t *testing.T) {
	for unit, want := range map[string]string{"a.service": "Service", "b.socket": "Socket", "c@x.service": "Service", "odd": "Service"} {
		if got := unitType(unit); got != want {
			t.Errorf("unitType(%q) = %q, want %q", unit, got, want)
		}
	}
}

func TestIsDirect(t *testing.T) {
	for addr, want := range map[string]bool{
		"unix:path=/run/user/0/systemd/private": true,
		"unix:path=/run/user/0/bus":             false,
		"unix:path=/run/dbus/system_bus_socket": false,
	} {
		if got := isDirect(addr); got != want {
			t.Errorf("isDirect(%q) = %v", addr, got)
		}
	}
}

func TestPropChangeApplies(t *testing.T) {
	st := UnitStatus{ActiveState: "active", SubState: "running", Result: "success", NRestarts: 0}
	propChange{
		"SubState":  godbus.MakeVariant("auto-restart"),
		"Result":    godbus.MakeVariant("watchdog"),
		"NRestarts": godbus.MakeVariant(uint32(1)),
		"Other":     godbus.MakeVariant(true),
	}.applyTo(&st)
	if st.SubState != "auto-restart" || st.Result != "watchdog" || st.NRestarts != 1 || st.ActiveState != "active" {
		t.Errorf("after applying: %+v", st)
	}
}
