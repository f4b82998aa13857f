package dashboard

import (
	"net/http"
	"time"

	"github.com/modelslot/modelslot/internal/fleet/store"
)

// maxHistory bounds the events on a device's page (newest first).
const maxHistory = 200

// devicePage is one device: its models with a rollback button each, and its
// event history under every rollout and command.
type devicePage struct {
	ID        string
	Models    []deviceModel
	Events    []store.EventRecord
	Generated time.Time
}

type deviceModel struct {
	store.Device
	Rollback action
}

func (h *Handler) device(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	devs, err := h.c.DB.Device(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	if len(devs) == 0 {
		http.Error(w, "the controller knows no device "+id+": it appears once its agent sends an event", http.StatusNotFound)
		return
	}
	p := &devicePage{ID: id, Generated: h.now()}
	for _, d := range devs {
		p.Models = append(p.Models, deviceModel{Device: d, Rollback: rollbackAction(d)})
	}
	if p.Events, err = h.c.DB.DeviceEvents(r.Context(), id, maxHistory); err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, "device", p)
}
