package health

import (
	"context"
	"time"
)

// DefaultCheckTimeout bounds one check command when the config sets no
// confirm_window.
const DefaultCheckTimeout = 60 * time.Second

// Confirmer confirms an activated version by the configured checks. It
// implements update.Confirmer. Checks see the version under test in their
// environment: MODELSLOT_MODEL, MODELSLOT_VERSION, MODELSLOT_SLOT,
// MODELSLOT_SLOT_DIR and MODELSLOT_LINK.
type Confirmer struct {
	Model   string
	Link    string
	SlotDir func(slot string) string
	Checks  Checks
}

// Confirm runs the checks against slot.
func (c *Confirmer) Confirm(ctx context.Context, slot, version string) error {
	checks := c.Checks
	if checks.Timeout <= 0 {
		checks.Timeout = DefaultCheckTimeout
	}
	checks.Env = append(checks.Env[:len(checks.Env):len(checks.Env)],
		"MODELSLOT_MODEL="+c.Model, "MODELSLOT_VERSION="+version, "MODELSLOT_SLOT="+slot,
		"MODELSLOT_SLOT_DIR="+c.SlotDir(slot), "MODELSLOT_LINK="+c.Link)
	return checks.Run(ctx)
}
