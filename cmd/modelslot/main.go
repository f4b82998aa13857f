// Command modelslot updates the machine-learning model of a device through two
// slots and a link, so that an update is atomic, verified and undone by itself
// when the new version misbehaves. This package only parses flags and prints;
// the work is done in slots, verify and internal/update.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// globalOptions are the flags before the command name.
type globalOptions struct {
	config   string
	model    string
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
	json     bool // the command was asked for JSON: errors are JSON too
}

type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, g *globalOptions, args []string) error
}

var commands = []command{
	{"status", "[--json]", "show slots, versions, trial and last failure", runStatus},
	{"install", "[--allow-downgrade] SOURCE | --insecure --version V DIR", "install a signed model (channel or manifest URL, .mslot bundle, - for stdin) or a development directory, and activate it", runInstall},
	{"rollback", "[--if-trial [--unit UNIT]]", "go back to the previous good version now, and bring it back into service", runRollback},
	{"recover", "", "finish what a crash, power cut or lost service manager interrupted: a trial, a restore (the agent does this at start)", runRecover},
	{"mark-good", "", "end a trial by keeping the new version", runMarkGood},
	{"mark-bad", "", "end a trial (or leave the active version) by marking it bad", runMarkBad},
	{"verify", "[--slot a|b] [--json]", "re-hash a slot's files against its manifest", runVerify},
	{"keygen", "--out PREFIX", "make an ed25519 key pair for publishing", runKeygen},
	{"publish", "--key K --repo DIR --model M --version V [--channel C] DIR", "chunk, compress and sign a model directory into a repository", runPublish},
	{"bundle", "--key K --model M --version V -o FILE.mslot DIR", "the same as one streamable bundle file", runBundle},
	{"agent", "[--metrics-addr A]", "the daemon: recovery, event delivery, platform commands, metrics", runAgent},
	{"version", "", "print the version of modelslot", runVersion},
}

// memoryLimit is the soft heap limit modelslot runs under unless GOMEMLIMIT
// says otherwise: an install streams chunks through recycled buffers, and
// without a limit the Go runtime lets garbage grow the heap to 75-80 MiB on a
// device where 50 MiB is plenty (make bench measures it).
const memoryLimit = 48 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("modelslot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.config, "config", "", "config file (default $MODELSLOT_CONFIG, then /etc/modelslot/modelslot.toml)")
	fs.StringVar(&g.model, "model", "", "model to act on (may be left out when the config has one)")
	fs.StringVar(&g.logLevel, "log-level", envOr("MODELSLOT_LOG_LEVEL", "warn"), "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs)
			return exitOK
		}
		return reportError(g, usageErrorf("%v", err))
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return exitUsage
	}
	if err := setupLogging(g.logLevel, stderr); err != nil {
		return reportError(g, err)
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	for _, c := range commands {
		if c.name == name {
			return reportError(g, c.run(ctx, g, rest))
		}
	}
	if name == "help" {
		usage(stdout, fs)
		return exitOK
	}
	return reportError(g, usageErrorf("unknown command %q; run 'modelslot --help' for the list", name))
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: modelslot [--config FILE] [--model NAME] [--log-level L] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, exitCodeHelp)
}

func setupLogging(level string, w io.Writer) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return usageErrorf("--log-level %q: use debug, info, warn or error", level)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})))
	return nil
}

func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// newFlagSet returns a flag set for a command whose errors come back to the
// caller (and become exit code 2) instead of exiting the process.
func newFlagSet(name string, g *globalOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("modelslot "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return usageErrorf("%v", err)
	}
	return nil
}

// flagSet is the part of *flag.FlagSet that flag registration helpers use.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
}
