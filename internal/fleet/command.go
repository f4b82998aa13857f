package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/internal/report"
)

// ErrUnavailable: the controller cannot reach the broker now (503); try again.
var ErrUnavailable = errors.New("the broker is not reachable now")

// actionRollback is the agent's rollback action (internal/agent
// ActionRollback; this package does not import the device side).
const actionRollback = "rollback"

// command is a platform command as the agent parses it (internal/agent
// Command): an id to answer under, an action, a model.
type command struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Model  string `json:"model"`
}

// Sent is a command handed to the broker; its answer arrives later as an
// event of the device carrying CommandID.
type Sent struct {
	CommandID string `json:"command_id"`
	DeviceID  string `json:"device_id"`
	Model     string `json:"model"`
	Action    string `json:"action"`
}

// RollbackDevice asks one device to roll its model back to the previous
// version: a rollback command on the device's command topic (QoS 1, not
// retained: a device offline now gets it from its persistent session when it
// reconnects, and no later subscriber finds an old command waiting). It
// returns once the broker took it; the device answers
// with an event (rolled_back, or nothing_to_do when it has no previous
// version). A device the controller does not know with that model is
// store.ErrNotFound, so a typo never reaches the broker.
func (c *Controller) RollbackDevice(ctx context.Context, device, model string) (*Sent, error) {
	if device == "" || model == "" {
		return nil, fmt.Errorf("%w: a rollback needs a device and a model", ErrInvalid)
	}
	devs, err := c.DB.Device(ctx, device)
	if err != nil {
		return nil, err
	}
	known := false
	for _, d := range devs {
		known = known || d.Model == model
	}
	if !known {
		return nil, fmt.Errorf("device %s with model %s: %w (see GET /v1/devices)", device, model, store.ErrNotFound)
	}
	cmd := command{ID: "fleet-rollback-" + randomHex(8), Action: actionRollback, Model: model}
	body, _ := json.Marshal(cmd)
	if c.mqtt == nil || !c.mqtt.IsConnectionOpen() {
		return nil, fmt.Errorf("rollback %s on %s: %w", model, device, ErrUnavailable)
	}
	tok := c.mqtt.Publish(report.CommandsTopic(c.Prefix, device), 1, false, body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("rollback %s on %s: the broker did not take the command (%v): %w", model, device, tok.Error(), ErrUnavailable)
	}
	slog.Info("fleet: rollback sent to a device", "device", device, "model", model, "command", cmd.ID)
	return &Sent{CommandID: cmd.ID, DeviceID: device, Model: model, Action: actionRollback}, nil
}
