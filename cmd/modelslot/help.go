package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

const globalSynopsis = "modelslot [--config FILE] [--model NAME] [--log-level LEVEL] COMMAND [ARGS]"

// usage is the help of modelslot itself: the commands and the global flags.
func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n       modelslot --version\n\ncommands:\n", globalSynopsis)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	fs := flag.NewFlagSet("modelslot", flag.ContinueOnError)
	registerGlobalFlags(fs, &globalOptions{stderr: io.Discard})
	fs.Bool("version", false, "print the version of modelslot and exit")
	printFlags(w, docFlagList(fs, func(*flag.Flag) bool { return true }))
	fmt.Fprintln(w, "\nRun 'modelslot COMMAND --help' for a command's flags and examples; man modelslot for all of it.")
	fmt.Fprint(w, exitCodeHelp)
}

// commandHelp prints the help of command name from fs, the flag set it parses
// with (its own flags and the global ones).
func commandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c := lookupCommand(name)
	if c == nil { // a command missing from the table still gets its flags shown
		c = &command{name: name}
	}
	for i, line := range synopsisLines(c) {
		prefix := "usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%s%s\n", prefix, line)
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(c.help, 80))
	}
	own := docFlagList(fs, func(f *flag.Flag) bool { return !globalFlagNames[f.Name] || c.ownsFlag(f.Name) })
	if len(own) > 0 {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, own)
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	printFlags(w, docFlagList(fs, func(f *flag.Flag) bool { return globalFlagNames[f.Name] && !c.ownsFlag(f.Name) }))
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  modelslot %s\n      %s\n", e.cmd, e.what)
		}
	}
	fmt.Fprint(w, exitCodeHelp)
}

// ownsFlag reports whether the command defines a flag of that name itself
// (publish --model is the published model's name, not the global flag).
func (c *command) ownsFlag(name string) bool {
	if c.flags == nil {
		return false
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.flags(fs)
	return fs.Lookup(name) != nil
}

// synopsisLines are the usage lines of c, each starting "modelslot NAME".
func synopsisLines(c *command) []string {
	if len(c.synopsis) == 0 {
		return []string{"modelslot " + c.name}
	}
	lines := make([]string, len(c.synopsis))
	for i, s := range c.synopsis {
		lines[i] = strings.TrimSpace("modelslot " + c.name + " " + s)
	}
	return lines
}

// docFlag is one flag as the documentation shows it.
type docFlag struct {
	name, arg, usage, def string
	deprecated            bool
}

// docFlagList lists the flags of fs that keep accepts: sorted by name, the
// deprecated ones last.
func docFlagList(fs *flag.FlagSet, keep func(*flag.Flag) bool) []docFlag {
	var list []docFlag
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f) {
			return
		}
		arg, use := flag.UnquoteUsage(f)
		if isBoolFlag(f) {
			arg = ""
		}
		d := docFlag{name: f.Name, arg: arg, usage: use, deprecated: strings.HasPrefix(use, deprecatedPrefix)}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			d.def = f.DefValue
		}
		list = append(list, d)
	})
	sort.SliceStable(list, func(i, j int) bool { return !list[i].deprecated && list[j].deprecated })
	return list
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagValue names the value a flag takes, "" for a boolean flag.
func flagValue(f *flag.Flag) string {
	if isBoolFlag(f) {
		return ""
	}
	arg, _ := flag.UnquoteUsage(f)
	return arg
}

func (d docFlag) spec() string {
	if d.arg == "" {
		return dashed(d.name)
	}
	return dashed(d.name) + " " + d.arg
}

// dashed is a flag as it is written: --name, or -o for a one-letter flag (the
// flag package takes either form; a one-letter flag reads best with one).
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func (d docFlag) text() string {
	if d.def != "" {
		return fmt.Sprintf("%s (default %q)", d.usage, d.def)
	}
	return d.usage
}

func printFlags(w io.Writer, flags []docFlag) {
	for _, d := range flags {
		spec := d.spec()
		if len(spec) <= 22 {
			fmt.Fprintf(w, "  %-22s %s\n", spec, d.text())
			continue
		}
		fmt.Fprintf(w, "  %s\n  %-22s %s\n", spec, "", d.text())
	}
}

// wrap fills each paragraph of text (separated by a blank line) to width.
func wrap(text string, width int) string {
	var out []string
	for _, para := range strings.Split(text, "\n\n") {
		var lines []string
		line := ""
		for _, word := range strings.Fields(para) {
			if line != "" && len(line)+1+len(word) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += word
		}
		out = append(out, strings.Join(append(lines, line), "\n"))
	}
	return strings.Join(out, "\n\n")
}
