package cli

import (
	"context"
	"flag"
	"io"
	"sync"
)

// Program is one binary: its name, its command table and what its man page
// says besides the commands. The table is the one place a command is
// declared; --help, the man page and the completions are generated from it.
type Program struct {
	Name        string    // the binary's name: "modelslot", "modelslot-fleet"
	Title       string    // the man page's NAME line, after "NAME \-"
	Description string    // the man page's DESCRIPTION, paragraphs separated by a blank line
	ManFiles    string    // roff: the man page's FILES and SEE ALSO sections
	Commands    []Command // in the order the help lists them; version, help, gen-man and gen-completion follow
	// NoFileArgs are the commands whose arguments do not complete to file names.
	NoFileArgs []string
	// HelpExample is the command whose help the help command's example shows.
	HelpExample string

	once sync.Once
	all  []Command
}

// Command is one entry of the command table: everything --help, the man page
// and the completions say about it, and what runs it.
type Command struct {
	Name     string
	Synopsis []string // argument lines, each after "PROGRAM NAME"
	Summary  string   // one line, for the list of commands
	Help     string   // what it does, in paragraphs separated by a blank line
	Examples []Example
	// Flags registers the command's flags on fs: the same function its run
	// uses, so the documentation cannot miss one. nil: no flags of its own.
	Flags  func(fs *flag.FlagSet)
	Run    func(ctx context.Context, g *Options, args []string) error
	Hidden bool // a tool for packagers: not listed, not completed
	// Provider is the binary that runs the command when this one does not
	// link it (the fleet controller's heavy dependencies stay off devices):
	// the program execs it with its own arguments (Provided).
	Provider string
}

// Example is one example of a command's help.
type Example struct {
	Cmd  string // the command line after "PROGRAM "
	What string
}

// Provided is the table entry of a command that the binary provider runs:
// `PROGRAM NAME ARGS` execs `provider NAME ARGS`. Its full documentation is
// the provider's.
func Provided(name, provider, summary string) Command {
	return Command{
		Name:     name,
		Synopsis: []string{"ARGS…"},
		Summary:  summary + " (" + provider + ")",
		Help: "Provided by " + provider + " (the " + provider + " package), which this command runs with the same " +
			"arguments; without it, exit 2. Its flags and examples: `" + provider + " " + name + " --help` and " + provider + "(1).",
		Examples: []Example{{name + " --help", "the help of " + provider + " " + name}},
		Provider: provider,
	}
}

// commands is the program's table followed by the commands every program
// has (version, help, gen-man, gen-completion).
func (p *Program) commands() []Command {
	p.once.Do(func() {
		p.all = append(append([]Command{}, p.Commands...), versionCommand(p), helpCommand(p), genManCommand(p), genCompletionCommand(p))
	})
	return p.all
}

// Lookup returns the command called name, or nil.
func (p *Program) Lookup(name string) *Command {
	all := p.commands()
	for i := range all {
		if all[i].Name == name {
			return &all[i]
		}
	}
	return nil
}

// Visible lists the commands the help lists (not the hidden ones).
func (p *Program) Visible() []*Command {
	var list []*Command
	all := p.commands()
	for i := range all {
		if !all[i].Hidden {
			list = append(list, &all[i])
		}
	}
	return list
}

// All lists every command, hidden ones included.
func (p *Program) All() []*Command {
	var list []*Command
	all := p.commands()
	for i := range all {
		list = append(list, &all[i])
	}
	return list
}

// DocFlags is the flag set of c as its documentation shows it: the command's
// own flags, then the global ones it accepts.
func (p *Program) DocFlags(c *Command) *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name+" "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	registerGlobalFlags(fs, &Options{Stderr: io.Discard})
	return fs
}

// DeprecatedPrefix starts the usage of a flag kept only for old scripts: the
// help lists it last, completions leave it out.
const DeprecatedPrefix = "deprecated: "

func versionCommand(p *Program) Command {
	return Command{
		Name:     "version",
		Summary:  "print the version of " + p.Name,
		Help:     "Prints the semantic version of this build and the commit it was built from, as `" + p.Name + " --version` does.",
		Examples: []Example{{"version", "prints e.g. " + p.Name + " 0.1.0 (commit 3f2a9c1d7e4b, go1.26.8 linux/arm64)"}},
		Run:      runVersion,
	}
}

func helpCommand(p *Program) Command {
	return Command{
		Name:     "help",
		Synopsis: []string{"[COMMAND]"},
		Summary:  "show the list of commands, or the help of one",
		Help:     "Without COMMAND, lists the commands and the global flags; with one, prints its help, like `" + p.Name + " COMMAND --help`.",
		Examples: []Example{{"help " + p.HelpExample, "the flags and examples of " + p.HelpExample}},
		Run:      runHelp,
	}
}

func runHelp(ctx context.Context, g *Options, args []string) error {
	fs := NewFlagSet("help", g)
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	p := g.prog
	switch fs.NArg() {
	case 0:
		p.usage(g.Stdout)
		return nil
	case 1:
		c := p.Lookup(fs.Arg(0))
		if c == nil {
			return UsageErrorf("unknown command %q; run '%s --help' for the list", fs.Arg(0), p.Name)
		}
		p.commandHelp(g.Stdout, c.Name, p.DocFlags(c))
		return nil
	}
	return UsageErrorf("help takes at most one COMMAND, got %d", fs.NArg())
}
