package loader_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelslot/modelslot/loader"
)

// textModel is a stand-in for a real model: its answer is a file of its slot.
type textModel struct{ answer []byte }

func (m *textModel) Probe(context.Context, []byte) ([]byte, error) { return m.answer, nil }
func (m *textModel) Close() error                                  { return nil }

// How a server embeds loader: open every file through the Slot, lease the
// model for each request, and let Run follow the link.
func Example() {
	open := func(_ context.Context, s *loader.Slot) (*textModel, error) {
		b, err := s.ReadFile("answer.json") // never through the link path
		return &textModel{answer: b}, err
	}
	l := loader.New("/var/lib/modelslot/demo/current", open, loader.Options{})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := l.Load(ctx); err != nil { // READY=1 once loaded
		log.Fatal(err)
	}
	defer l.Close()
	go l.Run(ctx)                               // link swaps and SIGHUP reload; watchdog pings
	ln, err := loader.Listen(os.Getenv("ADDR")) // the socket systemd passed, else ADDR
	if err != nil {
		log.Fatal(err)
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lease, err := l.Acquire() // one model for the whole request
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer lease.Release()
		w.Write(lease.Model.answer)
	}))
}
