// Command modelslot-demo is a small real inference server built on loader: it
// serves the two-layer MLP behind modelslot's link over HTTP and follows the
// link without dropping a request.
//
//	modelslot-demo --link PATH [--addr HOST:PORT] [--no-watch] [--drain DURATION]
//
// POST /v1/infer takes {"inputs":[[...]]} and answers {"outputs":[[...]],
// "version":"v1","model":"demo"}; GET /healthz answers the version. Without
// --addr it serves the socket systemd passes (socket activation). Formats and
// unit files: docs/demo-server.md. Exit codes: 0 stopped by SIGTERM/SIGINT,
// 1 failed (no model could be loaded, no socket), 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelslot/modelslot/loader"
)

type options struct {
	link    string
	addr    string
	noWatch bool
	drain   time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := loader.Listen(opts.addr)
	if err != nil {
		log.Error("no socket to serve", "err", err)
		return 1
	}
	if err := runServer(ctx, opts, ln, log); err != nil {
		log.Error("modelslot-demo stopped", "err", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("modelslot-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.link, "link", "", "path of the model link (or a model directory)")
	fs.StringVar(&o.addr, "addr", "", "HOST:PORT to listen on; empty: the socket systemd passes")
	fs.BoolVar(&o.noWatch, "no-watch", false, "do not follow the link; reload on SIGHUP only")
	fs.DurationVar(&o.drain, "drain", 200*time.Millisecond, "on SIGTERM, time for in-flight requests before shutdown")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.link == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: modelslot-demo --link PATH [--addr HOST:PORT] [--no-watch] [--drain DURATION]")
		return o, errors.New("usage")
	}
	return o, nil
}

// runServer loads the model, then serves on ln and follows the link until
// ctx ends.
func runServer(ctx context.Context, o options, ln net.Listener, log *slog.Logger) error {
	l := loader.New(o.link, openModel, loader.Options{Logger: log, NoWatch: o.noWatch, Alive: selfCheck(ln.Addr())})
	defer l.Close()
	if err := l.Load(ctx); err != nil {
		ln.Close()
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "version", l.Version())
	go l.Run(ctx)
	return serve(ctx, ln, (&server{loader: l, log: log}).routes(), o.drain, log)
}
