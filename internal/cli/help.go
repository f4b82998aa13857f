package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

func (p *Program) globalSynopsis() string {
	return p.Name + " [--config FILE] [--model NAME] [--log-level LEVEL] COMMAND [ARGS]"
}

// globalFlags is the flag set of the program itself: the global flags and
// --version.
func (p *Program) globalFlags() *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	registerGlobalFlags(fs, &Options{Stderr: io.Discard})
	fs.Bool("version", false, "print the version of "+p.Name+" and exit")
	return fs
}

// usage is the help of the program itself: the commands and the global flags.
func (p *Program) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n       %s --version\n\ncommands:\n", p.globalSynopsis(), p.Name)
	for _, c := range p.Visible() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	printFlags(w, docFlagList(p.globalFlags(), func(*flag.Flag) bool { return true }))
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags and examples; man %s for all of it.\n", p.Name, p.Name)
	fmt.Fprint(w, exitCodeHelp)
}

// commandHelp prints the help of command name from fs, the flag set it parses
// with (its own flags and the global ones).
func (p *Program) commandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c := p.Lookup(name)
	if c == nil { // a command missing from the table still gets its flags shown
		c = &Command{Name: name}
	}
	for i, line := range p.synopsisLines(c) {
		prefix := "usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%s%s\n", prefix, line)
	}
	if c.Help != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(c.Help, 80))
	}
	own := docFlagList(fs, func(f *flag.Flag) bool { return !GlobalFlagNames[f.Name] || c.OwnsFlag(f.Name) })
	if len(own) > 0 {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, own)
	}
	fmt.Fprintln(w, "\nglobal flags (before or after the command):")
	printFlags(w, docFlagList(fs, func(f *flag.Flag) bool { return GlobalFlagNames[f.Name] && !c.OwnsFlag(f.Name) }))
	if len(c.Examples) > 0 {
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range c.Examples {
			fmt.Fprintf(w, "  %s %s\n      %s\n", p.Name, e.Cmd, e.What)
		}
	}
	fmt.Fprint(w, exitCodeHelp)
}

// OwnsFlag reports whether the command defines a flag of that name itself
// (publish --model is the published model's name, not the global flag).
func (c *Command) OwnsFlag(name string) bool {
	if c.Flags == nil {
		return false
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	c.Flags(fs)
	return fs.Lookup(name) != nil
}

// synopsisLines are the usage lines of c, each starting "PROGRAM NAME".
func (p *Program) synopsisLines(c *Command) []string {
	if len(c.Synopsis) == 0 {
		return []string{p.Name + " " + c.Name}
	}
	lines := make([]string, len(c.Synopsis))
	for i, s := range c.Synopsis {
		lines[i] = strings.TrimSpace(p.Name + " " + c.Name + " " + s)
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
		d := docFlag{name: f.Name, arg: arg, usage: use, deprecated: strings.HasPrefix(use, DeprecatedPrefix)}
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
		return Dashed(d.name)
	}
	return Dashed(d.name) + " " + d.arg
}

// Dashed is a flag as it is written: --name, or -o for a one-letter flag (the
// flag package takes either form; a one-letter flag reads best with one).
func Dashed(name string) string {
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
