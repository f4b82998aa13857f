package verify

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicyRefusesWhatTheDeviceDoesNotAccept(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		m    *Manifest
		want string // "" = accepted
	}{
		{"the configured model", Policy{Model: "demo"}, &Manifest{Model: "demo", Version: "v1", Sequence: 1}, ""},
		{"another model", Policy{Model: "other"}, &Manifest{Model: "demo", Version: "v1"}, `for model "demo", this is "other"`},
		{"an unsigned directory's manifest", Policy{Model: "demo"}, &Manifest{Model: "demo", Version: "v1", Insecure: true}, "marked insecure"},
		{"an older sequence", Policy{Model: "demo", ActiveSequence: 5}, &Manifest{Model: "demo", Version: "v1", Sequence: 4}, "downgrade: v1 has sequence 4"},
		{"an older sequence allowed", Policy{Model: "demo", ActiveSequence: 5, AllowDowngrade: true}, &Manifest{Model: "demo", Version: "v1", Sequence: 4}, ""},
		{"a constraint the device fails", Policy{Model: "demo", Device: Device{Arch: "amd64"}},
			&Manifest{Model: "demo", Version: "v1", Requires: &Requires{Arch: []string{"arm64"}}}, "architecture amd64 not in [arm64]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check(tc.m)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want a rejection saying %q", err, tc.want)
			}
		})
	}
}
