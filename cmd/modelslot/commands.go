package main

import (
	"context"
	"flag"
	"io"
)

// command is one entry of the command table: everything --help, the man page
// and the completions say about it, and what runs it.
type command struct {
	name     string
	synopsis []string // argument lines, each after "modelslot NAME"
	summary  string   // one line, for the list of commands
	help     string   // what it does, in paragraphs separated by a blank line
	examples []example
	// flags registers the command's flags on fs: the same function its run
	// uses, so the documentation cannot miss one. nil: no flags of its own.
	flags  func(fs *flag.FlagSet)
	run    func(ctx context.Context, g *globalOptions, args []string) error
	hidden bool // a tool for packagers: not listed, not completed
}

type example struct {
	cmd  string // the command line after "modelslot "
	what string
}

// commands is the table, in the order the help lists it. Add a command with
// one entry here and its runX in a cmd_*.go file. It is filled in init
// because the documentation commands read it.
var commands []command

func init() {
	commands = []command{
		statusCommand,
		installCommand,
		rollbackCommand,
		recoverCommand,
		markGoodCommand,
		markBadCommand,
		verifyCommand,
		agentCommand,
		fleetCommand,
		rolloutCommand,
		keygenCommand,
		publishCommand,
		bundleCommand,
		pruneCommand,
		versionCommand,
		helpCommand,
		genManCommand,
		genCompletionCommand,
	}
}

func lookupCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// docFlags is the flag set of c as its documentation shows it: the command's
// own flags, then the global ones it accepts.
func docFlags(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("modelslot "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	registerGlobalFlags(fs, &globalOptions{stderr: io.Discard})
	return fs
}

// deprecatedPrefix starts the usage of a flag kept only for old scripts: the
// help lists it last, completions leave it out.
const deprecatedPrefix = "deprecated: "

var versionCommand = command{
	name:     "version",
	summary:  "print the version of modelslot",
	help:     "Prints the semantic version of this build and the commit it was built from, as `modelslot --version` does.",
	examples: []example{{"version", "prints e.g. modelslot 0.1.0 (commit 3f2a9c1d7e4b, go1.26.8 linux/arm64)"}},
	run:      runVersion,
}

var helpCommand = command{
	name:     "help",
	synopsis: []string{"[COMMAND]"},
	summary:  "show the list of commands, or the help of one",
	help:     "Without COMMAND, lists the commands and the global flags; with one, prints its help, like `modelslot COMMAND --help`.",
	examples: []example{{"help install", "the flags and examples of install"}},
	run:      runHelp,
}

func runHelp(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("help", g)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		usage(g.stdout)
		return nil
	case 1:
		c := lookupCommand(fs.Arg(0))
		if c == nil {
			return usageErrorf("unknown command %q; run 'modelslot --help' for the list", fs.Arg(0))
		}
		commandHelp(g.stdout, c.name, docFlags(c))
		return nil
	}
	return usageErrorf("help takes at most one COMMAND, got %d", fs.NArg())
}
