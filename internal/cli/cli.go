// Package cli is the command-line plumbing that modelslot and modelslot-fleet
// share: a program's command table (commands.go), the global flags, the run
// of one command with its exit code (errors.go), and what is generated from
// the table: --help (help.go), the man page (man.go) and the bash/zsh/fish
// completions (completion.go). A command a binary does not link is an entry
// naming the binary that provides it, which is exec'd (exec.go).
package cli

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

// Options are the flags that every command accepts, before or after its
// name, and where it prints.
type Options struct {
	Config   string
	Model    string
	LogLevel string
	Stdout   io.Writer
	Stderr   io.Writer
	JSON     bool // the command was asked for JSON: errors are JSON too

	prog *Program
	args []string // the program's arguments, for a provided command's exec
}

// memoryLimit is the soft heap limit modelslot runs under unless GOMEMLIMIT
// says otherwise: an install streams chunks through recycled buffers, and
// without a limit the Go runtime lets garbage grow the heap to 75-80 MiB on a
// device where 50 MiB is plenty (make bench measures it).
const memoryLimit = 48 << 20

// Main runs the program with the process's arguments and exits with the
// command's exit code.
func Main(p *Program) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signalContext()
	code := p.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
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

// Run is Main without the process: it parses the global flags, runs the
// command and returns its exit code.
func (p *Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &Options{Stdout: stdout, Stderr: stderr, prog: p, args: args}
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	registerGlobalFlags(fs, g)
	showVersion := fs.Bool("version", false, "print the version of "+p.Name+" and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			p.usage(stdout)
			return ExitOK
		}
		return reportError(g, UsageErrorf("%v; run '%s --help'", err, p.Name))
	}
	if *showVersion {
		fmt.Fprintln(stdout, p.versionString())
		return ExitOK
	}
	if fs.NArg() == 0 {
		p.usage(stderr)
		return ExitUsage
	}
	if err := SetupLogging(g.LogLevel, stderr); err != nil {
		return reportError(g, err)
	}
	c := p.Lookup(fs.Arg(0))
	if c == nil {
		return reportError(g, UsageErrorf("unknown command %q; run '%s --help' for the list", fs.Arg(0), p.Name))
	}
	if c.Provider != "" {
		return reportError(g, execProvider(c.Name, c.Provider, args))
	}
	return reportError(g, interrupted(ctx, c.Run(ctx, g, fs.Args()[1:])))
}

// registerGlobalFlags defines the global flags on fs, bound to g, leaving out
// any the command defines itself (publish and bundle have their own --model).
func registerGlobalFlags(fs *flag.FlagSet, g *Options) {
	if g.LogLevel == "" {
		g.LogLevel = EnvOr("MODELSLOT_LOG_LEVEL", "warn")
	}
	if fs.Lookup("config") == nil {
		fs.StringVar(&g.Config, "config", g.Config, "config `FILE` (default $MODELSLOT_CONFIG, then /etc/modelslot/modelslot.toml)")
	}
	if fs.Lookup("model") == nil {
		fs.StringVar(&g.Model, "model", g.Model, "`NAME` of the model to act on (may be left out when the config has one)")
	}
	if fs.Lookup("log-level") == nil {
		fs.Func("log-level", "log `LEVEL`: debug, info, warn (default) or error; also $MODELSLOT_LOG_LEVEL", func(v string) error {
			g.LogLevel = v
			return SetupLogging(v, g.Stderr)
		})
	}
}

// GlobalFlagNames are the flags every command accepts, which a command's help
// lists apart from its own.
var GlobalFlagNames = map[string]bool{"config": true, "model": true, "log-level": true}

// SetupLogging sends log/slog's records of level and above to w.
func SetupLogging(level string, w io.Writer) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return UsageErrorf("--log-level %q: use debug, info, warn or error", level)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})))
	return nil
}

// DaemonLogging raises a daemon's default log level to info: its log is its
// only voice. A level given by --log-level or MODELSLOT_LOG_LEVEL stands.
func DaemonLogging(g *Options) {
	if g.LogLevel == "warn" && EnvOr("MODELSLOT_LOG_LEVEL", "") == "" {
		SetupLogging("info", g.Stderr)
	}
}

// EnvOr is the environment variable key without surrounding spaces, or def
// when it is empty.
func EnvOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// FlagSet is a command's flag set: its own flags, and at parse time the
// global ones, bound to the command's Options.
type FlagSet struct {
	*flag.FlagSet
	g    *Options
	name string
}

// NewFlagSet returns a flag set for a command whose errors come back to the
// caller (and become exit code 2, printed once) instead of exiting the process.
func NewFlagSet(name string, g *Options) *FlagSet {
	fs := flag.NewFlagSet(g.prog.Name+" "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // ParseFlags prints; the flag package would print errors twice
	fs.Usage = func() {}
	return &FlagSet{FlagSet: fs, g: g, name: name}
}

// ParseFlags parses a command's arguments. --help prints the command's help to
// stdout and returns ErrHelpShown (exit 0).
func ParseFlags(fs *FlagSet, args []string) error {
	registerGlobalFlags(fs.FlagSet, fs.g)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.g.prog.commandHelp(fs.g.Stdout, fs.name, fs.FlagSet)
			return ErrHelpShown
		}
		return UsageErrorf("%v; run '%s %s --help'", err, fs.g.prog.Name, fs.name)
	}
	return nil
}
