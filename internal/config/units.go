package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "60s", "5m" in TOML.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: use a number with a unit, like \"60s\" or \"5m\"", b)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written as "2GiB", "512MiB", "1000000" in TOML.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (s *Size) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	if text == "" {
		*s = 0 // unset
		return nil
	}
	num, mult := text, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(text, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("size %q: use a number with a unit, like \"2GiB\" or \"512MiB\"", text)
	}
	*s = Size(v * float64(mult))
	return nil
}
