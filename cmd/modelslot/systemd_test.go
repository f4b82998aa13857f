package main

import (
	"strings"
	"testing"
	"time"
)

// A good version is activated by a restart of the real unit, answers its probe
// for the whole window, and is committed; the next one likewise.
func TestSystemdGoodVersionsAreCommitted(t *testing.T) {
	d := newSDDevice(t, sdOptions{})
	start := time.Now()
	d.install(0, "v1")
	d.agree("v1")
	d.install(0, "v2")
	st := d.agree("v2")
	if st.PreviousVersion == nil || *st.PreviousVersion != "v1" || st.Slots[*st.PreviousSlot].Status != "good" {
		t.Fatalf("v1 must stay good as the rollback target: %+v", st)
	}
	t.Logf("two committed updates in %s", time.Since(start).Round(time.Millisecond))
}

// Each broken variant acts out its failure under the real manager; modelslot
// names it, reverts, and the previous version serves again.
func TestSystemdBrokenVersionsAreReverted(t *testing.T) {
	for _, tc := range []struct {
		version, reason string
		opts            sdOptions
	}{
		{"v3-crash", "crash_loop", sdOptions{}},
		{"v3-hang", "watchdog_timeout", sdOptions{window: 2 * time.Second}},
		{"v3-slow", "latency_limit", sdOptions{}},
		{"v3-fat", "memory_limit", sdOptions{}},
		{"v3-wrong", "probe_mismatch", sdOptions{}},
		{"v2", "check_failed", sdOptions{checks: []string{`test "$MODELSLOT_VERSION" != v2 || { echo "v2 is not for this device" >&2; exit 3; }`}}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			d := newSDDevice(t, tc.opts)
			d.install(0, "v1")
			start := time.Now()
			r := d.install(exitRolledBack, tc.version)
			t.Logf("%s reverted in %s: %s", tc.version, time.Since(start).Round(time.Millisecond), firstLine(r.stderr))
			st := d.agree("v1")
			failedWith(t, st, tc.version, tc.reason)
			if tc.reason == "memory_limit" {
				memorySource(t, d, st.LastFailure.Reason)
			}
		})
	}
}

// memorySource checks the memory figure behind a memory_limit verdict: where
// the manager reports no MemoryCurrent (2^64-1, "[not set]"; seen on hybrid
// cgroups), it must come from the /proc RSS fallback.
func memorySource(t *testing.T, d *sdDevice, reason string) {
	t.Helper()
	cur := d.m.Show(t, demoUnit, "MemoryCurrent")
	t.Logf("MemoryCurrent here: %s; verdict: %s", cur, reason)
	if cur == "[not set]" && !strings.Contains(reason, "(rss)") {
		t.Fatalf("MemoryCurrent is unknown here, so the verdict must come from the RSS fallback: %q", reason)
	}
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// systemd counts modelslot's own restarts against StartLimitBurst (5 in 30 s
// in the packaged unit). Updates and reverts in quick succession, 7 restarts
// here, must each conclude on their merits, not as crash_loop because the
// unit was locked out by the limit.
func TestSystemdUpdatesInARowAreNotLockedOutByTheStartLimit(t *testing.T) {
	t.Parallel()
	d := newSDDevice(t, sdOptions{window: 500 * time.Millisecond})
	d.install(0, "v1")
	d.install(0, "v2")
	for range 2 {
		d.install(exitRolledBack, "v3-wrong")
		failedWith(t, d.agree("v2"), "v3-wrong", "probe_mismatch")
	}
	d.install(0, "v1")
	d.agree("v1")
}
