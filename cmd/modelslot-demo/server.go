package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelslot/modelslot/loader"
)

// maxBody bounds a request body; probe inputs are a few hundred bytes.
const maxBody = 1 << 20

type server struct {
	loader *loader.Loader[*model]
	log    *slog.Logger
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/infer", s.infer)
	mux.HandleFunc("GET /healthz", s.healthz)
	return mux
}

// infer answers with the model leased for this request only, so the outputs
// and the version in one answer come from one model, even across a reload.
func (s *server) infer(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read request: %w", err))
		return
	}
	lease, err := s.loader.Acquire()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer lease.Release()
	out, err := lease.Model.answer(r.Context(), body)
	switch {
	case errors.Is(err, errBadInput):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		s.log.Error("inference failed", "version", lease.Slot.Version, "err", err)
		writeError(w, http.StatusInternalServerError, err)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	}
}

type health struct {
	Status  string `json:"status"`
	Model   string `json:"model"`
	Version string `json:"version"`
	Slot    string `json:"slot"`
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	lease, err := s.loader.Acquire()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer lease.Release()
	version := lease.Model.alive()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(health{Status: "ok", Model: lease.Model.name, Version: version, Slot: lease.Slot.Dir})
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// selfCheck is the watchdog's liveness check: GET /healthz through the
// server's own listener, so a ping proves that accept, the handler and the
// model all answer.
func selfCheck(addr net.Addr) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, addr.Network(), addr.String())
		},
		DisableKeepAlives: true,
	}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://self/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET /healthz on %s: %w", addr, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz on %s: status %d", addr, resp.StatusCode)
		}
		return nil
	}
}

// serve serves until ctx ends, then drains: every answer from then on says
// "Connection: close", the listener is closed (under socket activation systemd
// keeps the socket, so new connections wait in its backlog for the next
// process), in-flight and next requests on open connections get drain time to
// finish, then Shutdown closes what is left. Shutdown (or
// SetKeepAlivesEnabled(false)) right away would close idle keep-alive
// connections that a client may be sending its next request on this very
// moment: that request would be lost (a reset), and clients do not retry POSTs.
func serve(ctx context.Context, ln net.Listener, h http.Handler, drain time.Duration, log *slog.Logger) error {
	var draining atomic.Bool
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
		})}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("draining", "wait", drain)
	draining.Store(true)
	ln.Close()
	time.Sleep(drain)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w; some requests were cut off", err)
	}
	return nil
}
