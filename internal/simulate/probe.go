package simulate

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/modelslot/modelslot/internal/reason"
)

// Probe stands in for a simulated device's health contract (there is no
// systemd unit per simulated device): it implements update.Confirmer and
// passes every version but Fail, which it fails as a probe that got the
// wrong answer (probe_mismatch), so the updater reverts exactly as it does
// on a real device. It has no Restore: the updater then counts the old
// version as back once the link is, as for a model without a unit.
type Probe struct {
	Fail string // the version that fails; "" = none

	mu        sync.Mutex
	confirmed map[string]*atomic.Int64 // by version: confirmations asked
}

// Confirm passes version unless it is the one set to fail.
func (p *Probe) Confirm(_ context.Context, _, version string) error {
	p.count(version).Add(1)
	if p.Fail != "" && version == p.Fail {
		return reason.New(reason.ProbeMismatch, "simulated probe: version %s is set to fail", version)
	}
	return nil
}

// Confirmations is how many times version was confirmed (or failed).
func (p *Probe) Confirmations(version string) int64 { return p.count(version).Load() }

func (p *Probe) count(version string) *atomic.Int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.confirmed == nil {
		p.confirmed = map[string]*atomic.Int64{}
	}
	c := p.confirmed[version]
	if c == nil {
		c = &atomic.Int64{}
		p.confirmed[version] = c
	}
	return c
}
