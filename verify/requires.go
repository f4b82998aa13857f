package verify

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Requires is what a model needs of the device it runs on. It is signed with the
// manifest and checked before the first byte is downloaded, so an incompatible
// model costs a manifest fetch, not a slot.
type Requires struct {
	// Arch lists the GOARCH values the model may run on ("amd64", "arm64", "arm");
	// empty means any.
	Arch []string `json:"arch,omitempty"`
	// MinRuntime is the lowest runtime version (dotted numbers, "2.1.0") the model
	// works with; the device reports its own in Device.Runtime.
	MinRuntime string `json:"min_runtime,omitempty"`
	// Labels must all be present on the device with these values (config labels).
	Labels map[string]string `json:"labels,omitempty"`
}

// Device is what a device says about itself when a manifest's Requires is checked.
type Device struct {
	Arch    string            // runtime.GOARCH
	Runtime string            // version of the inference runtime; "" if unknown
	Labels  map[string]string // from the config
}

var dottedRE = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$`)

// validateRequires is called by Manifest.Validate.
func (m *Manifest) validateRequires() error {
	r := m.Requires
	if r == nil {
		return nil
	}
	if r.MinRuntime != "" && !dottedRE.MatchString(r.MinRuntime) {
		return rejectf("requires.min_runtime %q: want dotted numbers like \"2.1.0\"", r.MinRuntime)
	}
	if len(r.Arch) > 16 || len(r.Labels) > 64 {
		return rejectf("requires: too many entries (at most 16 arch, 64 labels)")
	}
	return nil
}

// Check reports whether d satisfies r; a nil r is satisfied by every device.
// The error wraps ErrRejected and names every unmet constraint.
func (r *Requires) Check(d Device) error {
	if r == nil {
		return nil
	}
	var unmet []string
	if len(r.Arch) > 0 && !slices.Contains(r.Arch, d.Arch) {
		unmet = append(unmet, fmt.Sprintf("architecture %s not in %v", d.Arch, r.Arch))
	}
	if r.MinRuntime != "" && !versionAtLeast(d.Runtime, r.MinRuntime) {
		have := d.Runtime
		if have == "" {
			have = "unknown"
		}
		unmet = append(unmet, fmt.Sprintf("runtime %s is older than %s", have, r.MinRuntime))
	}
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got, ok := d.Labels[k]; !ok || got != r.Labels[k] {
			unmet = append(unmet, fmt.Sprintf("label %s=%q (device has %q)", k, r.Labels[k], got))
		}
	}
	if len(unmet) > 0 {
		return rejectf("incompatible with this device: %s", strings.Join(unmet, "; "))
	}
	return nil
}

// versionAtLeast compares dotted numeric versions; a missing part counts as 0
// and an unparsable have is never enough.
func versionAtLeast(have, want string) bool {
	if !dottedRE.MatchString(have) {
		return false
	}
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range max(len(h), len(w)) {
		hv, wv := part(h, i), part(w, i)
		if hv != wv {
			return hv > wv
		}
	}
	return true
}

func part(p []string, i int) int {
	if i >= len(p) {
		return 0
	}
	n, _ := strconv.Atoi(p[i])
	return n
}
