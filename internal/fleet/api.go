package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/fleet/store"
	"github.com/modelslot/modelslot/verify"
)

// ErrNotFoundOp: an operation the API does not have (404).
var ErrNotFoundOp = errors.New("no such operation: use pause, resume or abort")

// maxRequest bounds an API request body.
const maxRequest = 1 << 20

// handler is the controller's HTTP surface (docs/fleet.md § API): the JSON API
// under /v1/, Prometheus metrics, and the rollout documents as static files.
func (c *Controller) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/rollouts", c.authorized(c.apiList))
	mux.HandleFunc("POST /v1/rollouts", c.authorized(c.apiCreate))
	mux.HandleFunc("GET /v1/rollouts/{id}", c.authorized(c.apiStatus))
	mux.HandleFunc("POST /v1/rollouts/{id}/{op}", c.authorized(c.apiChange))
	mux.HandleFunc("GET /v1/rollouts/{id}/events", c.authorized(c.apiEvents))
	mux.HandleFunc("GET /v1/devices", c.authorized(c.apiDevices))
	mux.HandleFunc("POST /v1/devices/{id}/rollback", c.authorized(c.apiRollback))
	mux.Handle("GET /metrics", c.metrics.handler())
	mux.HandleFunc("GET /rollouts/{model}/{file}", c.serveDocument)
	if c.UI != nil {
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
		mux.Handle("/ui/", c.UI)
	}
	return mux
}

// Authorized reports whether r carries the API token (or none is
// configured): the one check of the API, which the dashboard's data and
// actions go through as well.
func (c *Controller) Authorized(r *http.Request) bool {
	if c.APIToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(c.APIToken)) == 1
}

// Unauthorized is the answer to a request without the API token.
func Unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="modelslot fleet"`)
	writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong API token: set [fleet] api_token_file for the CLI"})
}

// authorized requires the API token, when one is configured. The signed
// documents and the metrics stay readable without it: devices and Prometheus
// fetch them, and neither can change anything.
func (c *Controller) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.Authorized(r) {
			Unauthorized(w)
			return
		}
		h(w, r)
	}
}

func (c *Controller) apiList(w http.ResponseWriter, r *http.Request) {
	rs, err := c.DB.Rollouts(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	var out []*Status
	for _, x := range rs {
		s, err := c.Status(r.Context(), x.Doc.ID)
		if err != nil {
			writeError(w, err)
			return
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Controller) apiCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, errors.Join(ErrInvalid, err))
		return
	}
	ro, err := c.Create(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	s, err := c.Status(r.Context(), ro.Doc.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (c *Controller) apiStatus(w http.ResponseWriter, r *http.Request) {
	s, err := c.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (c *Controller) apiChange(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest)).Decode(&body); err != nil {
			writeError(w, errors.Join(ErrInvalid, err))
			return
		}
	}
	var op func(context.Context, string, string) (*store.Rollout, error)
	switch r.PathValue("op") {
	case "pause":
		op = c.Pause
	case "resume":
		op = c.Resume
	case "abort":
		op = c.Abort
	default:
		writeError(w, ErrNotFoundOp)
		return
	}
	ro, err := op(r.Context(), r.PathValue("id"), body.Reason)
	if err != nil {
		writeError(w, err)
		return
	}
	s, err := c.Status(r.Context(), ro.Doc.ID)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// maxEvents bounds one answer of the event history.
const maxEvents = 10000

func (c *Controller) apiEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := c.DB.GetRollout(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	evs, err := c.DB.Events(r.Context(), id, r.URL.Query().Get("device"), maxEvents)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, evs)
}

func (c *Controller) apiDevices(w http.ResponseWriter, r *http.Request) {
	devs, err := c.DB.Devices(r.Context(), r.URL.Query().Get("model"))
	if err != nil {
		writeError(w, err)
		return
	}
	if devs == nil {
		devs = []store.Device{}
	}
	writeJSON(w, http.StatusOK, devs)
}

func (c *Controller) apiRollback(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model string `json:"model"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, errors.Join(ErrInvalid, err))
		return
	}
	sent, err := c.RollbackDevice(r.Context(), r.PathValue("id"), body.Model)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, sent)
}

// serveDocument serves the static copy of a rollout document with an ETag,
// so devices polling rollout_url cost a 304 while nothing changed.
func (c *Controller) serveDocument(w http.ResponseWriter, r *http.Request) {
	model, file := r.PathValue("model"), r.PathValue("file")
	channel, ok := strings.CutSuffix(file, ".json")
	if verify.CheckModelName(model) != nil || !ok || verify.CheckModelName(channel) != nil {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(c.staticPath(model, channel))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(b)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	w.Header().Set("Content-Type", "application/json")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, ErrNotFoundOp):
		status = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrState), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrUnavailable):
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		slog.Error("fleet: API request failed", "err", err)
	}
	writeJSON(w, status, apiError{Error: err.Error()})
}
