// Command modelslot updates the machine-learning model of a device through two
// slots and a link, so that an update is atomic, verified and undone by itself
// when the new version misbehaves. This package only parses flags and prints;
// the work is done in slots, verify and internal/update. Every command, its
// flags and its help live in one table (commands.go), from which --help, the
// man page and the shell completions are generated.
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

// globalOptions are the flags that every command accepts, before or after
// its name.
type globalOptions struct {
	config   string
	model    string
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
	json     bool // the command was asked for JSON: errors are JSON too
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
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext is cancelled by the first SIGINT or SIGTERM, with the signal as
// its cause (the exit code is 128 + its number). Later signals are caught too,
// so the cleanup that cancellation starts is not cut short.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(signalCause{s.(syscall.Signal)})
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("modelslot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	registerGlobalFlags(fs, g)
	showVersion := fs.Bool("version", false, "print the version of modelslot and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		return reportError(g, usageErrorf("%v; run 'modelslot --help'", err))
	}
	if *showVersion {
		fmt.Fprintln(stdout, versionString())
		return exitOK
	}
	if fs.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	if err := setupLogging(g.logLevel, stderr); err != nil {
		return reportError(g, err)
	}
	c := lookupCommand(fs.Arg(0))
	if c == nil {
		return reportError(g, usageErrorf("unknown command %q; run 'modelslot --help' for the list", fs.Arg(0)))
	}
	return reportError(g, interrupted(ctx, c.run(ctx, g, fs.Args()[1:])))
}

// registerGlobalFlags defines the global flags on fs, bound to g, leaving out
// any the command defines itself (publish and bundle have their own --model).
func registerGlobalFlags(fs *flag.FlagSet, g *globalOptions) {
	if g.logLevel == "" {
		g.logLevel = envOr("MODELSLOT_LOG_LEVEL", "warn")
	}
	if fs.Lookup("config") == nil {
		fs.StringVar(&g.config, "config", g.config, "config `FILE` (default $MODELSLOT_CONFIG, then /etc/modelslot/modelslot.toml)")
	}
	if fs.Lookup("model") == nil {
		fs.StringVar(&g.model, "model", g.model, "`NAME` of the model to act on (may be left out when the config has one)")
	}
	if fs.Lookup("log-level") == nil {
		fs.Func("log-level", "log `LEVEL`: debug, info, warn (default) or error; also $MODELSLOT_LOG_LEVEL", func(v string) error {
			g.logLevel = v
			return setupLogging(v, g.stderr)
		})
	}
}

// globalFlagNames are the flags registerGlobalFlags defines, for the help of
// a command (which lists them apart from its own).
var globalFlagNames = map[string]bool{"config": true, "model": true, "log-level": true}

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

// cmdFlagSet is a command's flag set: its own flags, and at parse time the
// global ones, bound to the command's globalOptions.
type cmdFlagSet struct {
	*flag.FlagSet
	g    *globalOptions
	name string
}

// newFlagSet returns a flag set for a command whose errors come back to the
// caller (and become exit code 2, printed once) instead of exiting the process.
func newFlagSet(name string, g *globalOptions) *cmdFlagSet {
	fs := flag.NewFlagSet("modelslot "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseFlags prints; the flag package would print errors twice
	fs.Usage = func() {}
	return &cmdFlagSet{FlagSet: fs, g: g, name: name}
}

// parseFlags parses a command's arguments. --help prints the command's help to
// stdout and returns errHelpShown (exit 0).
func parseFlags(fs *cmdFlagSet, args []string) error {
	registerGlobalFlags(fs.FlagSet, fs.g)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(fs.g.stdout, fs.name, fs.FlagSet)
			return errHelpShown
		}
		return usageErrorf("%v; run 'modelslot %s --help'", err, fs.name)
	}
	return nil
}

// flagSet is the part of *flag.FlagSet that flag registration helpers use.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	Uint64Var(p *uint64, name string, value uint64, usage string)
}
