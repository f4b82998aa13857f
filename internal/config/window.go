package config

import (
	"fmt"
	"time"
)

// Window is a daily maintenance window in the device's local time, written
// "HH:MM-HH:MM" in TOML; it may cross midnight ("22:00-04:00"). The zero
// Window is always open.
type Window struct {
	Start, End time.Duration // offsets from local midnight
	Set        bool
}

func (w *Window) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*w = Window{} // unset: always open
		return nil
	}
	var h1, m1, h2, m2 int
	if _, err := fmt.Sscanf(string(b), "%d:%d-%d:%d", &h1, &m1, &h2, &m2); err != nil ||
		!clock(h1, m1) || !clock(h2, m2) || (h1 == h2 && m1 == m2) {
		return fmt.Errorf("maintenance window %q: write \"HH:MM-HH:MM\" in local time, e.g. \"02:00-05:00\"", b)
	}
	*w = Window{Start: hm(h1, m1), End: hm(h2, m2), Set: true}
	return nil
}

func clock(h, m int) bool { return h >= 0 && h < 24 && m >= 0 && m < 60 }

func hm(h, m int) time.Duration { return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute }

// Open reports whether t falls inside the window, and when not, how long until
// it opens.
func (w Window) Open(t time.Time) (bool, time.Duration) {
	if !w.Set {
		return true, 0
	}
	y, mo, d := t.Date()
	midnight := time.Date(y, mo, d, 0, 0, 0, 0, t.Location())
	at := t.Sub(midnight)
	inside := at >= w.Start && at < w.End
	if w.Start > w.End { // crosses midnight
		inside = at >= w.Start || at < w.End
	}
	if inside {
		return true, 0
	}
	wait := w.Start - at
	if wait < 0 {
		wait += 24 * time.Hour
	}
	return false, wait
}
