package verify

// Policy is what a device requires of a manifest beyond its signature: the
// device's rules, beside the manifest's own (Validate) and its Requires.
type Policy struct {
	Model          string // the configured model name
	ActiveSequence uint64 // sequence of the active slot's manifest; 0 = none
	AllowDowngrade bool   // --allow-downgrade
	Device         Device // for the manifest's Requires
}

// Check applies p to m before anything is downloaded. Every refusal wraps
// ErrRejected and says how to proceed when there is a way.
func (p Policy) Check(m *Manifest) error {
	if m.Model != p.Model {
		return rejectf("manifest is for model %q, this is %q", m.Model, p.Model)
	}
	if m.Insecure {
		return rejectf("manifest %s is marked insecure (built from an unsigned directory); it cannot come from a repository", m.Version)
	}
	if m.Sequence < p.ActiveSequence && !p.AllowDowngrade {
		return rejectf("downgrade: %s has sequence %d, the active version has %d (an older manifest replayed?); use --allow-downgrade to install it anyway",
			m.Version, m.Sequence, p.ActiveSequence)
	}
	return m.Requires.Check(p.Device)
}
