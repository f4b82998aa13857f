// Package dashboard is the fleet controller's web page, served by `modelslot
// fleet serve` under /ui/: devices by version and state, each rollout's stages
// with a stage bar, failures by reason, a versions-over-time chart (SVG drawn
// here, on the server), one device's event history, and the actions pause,
// resume, abort and roll back one device.
//
// It reads what the API reads (the controller's Status, its store) and
// changes nothing itself: the page's few lines of JavaScript send each action
// to the /v1/ API with the operator's bearer token, so the API's check is the
// only one. Every piece of data is a fragment behind the same token check;
// the shell pages around them hold none. A button is drawn only where the
// controller's table of operations (fleet.Actions) allows it, so the page
// never offers what the API would refuse. Everything is embedded: no build
// step, no CDN.
package dashboard

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelslot/modelslot/internal/fleet"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pollInterval is how often the page asks for a fresh fragment (polling a
// small fragment is simpler and sturdier behind proxies than a stream).
const pollInterval = 2 * time.Second

// Handler serves the dashboard; mount it at /ui/ (fleet.Controller.UI).
type Handler struct {
	c      *fleet.Controller
	tmpl   *template.Template
	mux    *http.ServeMux
	mu     sync.Mutex
	charts map[string]cachedChanges // by model
}

// New builds the dashboard of controller c.
func New(c *fleet.Controller) *Handler {
	h := &Handler{c: c, tmpl: template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")), mux: http.NewServeMux(),
		charts: map[string]cachedChanges{}}
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /ui/{$}", h.shell("overview", func(*http.Request) string { return "/ui/fragments/overview" }))
	h.mux.HandleFunc("GET /ui/devices/{id}", h.shell("device", func(r *http.Request) string {
		return "/ui/fragments/devices/" + pathEscape(r.PathValue("id"))
	}))
	h.mux.HandleFunc("GET /ui/fragments/overview", h.authorized(h.overview))
	h.mux.HandleFunc("GET /ui/fragments/devices/{id}", h.authorized(h.device))
	return h
}

// ServeHTTP sets the headers every answer carries: a policy that runs only
// the page's own script and styles, loads nothing from elsewhere, cannot be
// framed, and submits no form natively (the token form is read by the script;
// a native submit would put the token in a URL), so a value that slipped past
// escaping could still not run.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// shell serves a page without data: the token form, and the place its
// fragment is polled into.
func (h *Handler) shell(name string, fragment func(*http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.render(w, "shell", map[string]any{"Page": name, "Fragment": fragment(r), "Poll": pollInterval.Milliseconds()})
	}
}

// authorized is the API's own token check (fleet.Controller.Authorized).
func (h *Handler) authorized(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.c.Authorized(r) {
			fleet.Unauthorized(w)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		f(w, r)
	}
}

// render executes a template into memory first, so a failure is a clean 500
// rather than half a page.
func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		slog.Error("fleet dashboard: rendering failed", "template", name, "err", err)
		http.Error(w, "the dashboard could not render "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	slog.Error("fleet dashboard: reading the fleet failed", "err", err)
	http.Error(w, "the controller could not read its database: "+err.Error(), http.StatusInternalServerError)
}

func (h *Handler) now() time.Time {
	if h.c.Now != nil {
		return h.c.Now().UTC()
	}
	return time.Now().UTC()
}
