package main

import (
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
)

// runBinary runs the modelslot binary with exactly args (no --config added).
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runAt(t, binary, env, args...)
}

func TestHelpOfEveryCommandGoesToStdoutWithExitZero(t *testing.T) {
	for _, c := range program.All() {
		if len(c.Help) < 40 || len(c.Examples) == 0 || c.Summary == "" {
			t.Errorf("command %s needs a summary, a help text and an example in its table entry", c.Name)
			continue
		}
		// A provided command's help is its provider's (modelslot-fleet's).
		wants := []string{"usage: modelslot " + c.Name, c.Help[:20], "examples:\n  modelslot ", "exit codes:"}
		if c.Provider != "" {
			wants = []string{"usage: " + c.Provider + " " + c.Name, "examples:\n  " + c.Provider + " ", "exit codes:"}
		}
		for _, h := range []string{"--help", "-h"} {
			r := runBinary(t, nil, c.Name, h)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("%s %s: want exit 0 and nothing on stderr, got %v", c.Name, h, r)
			}
			for _, want := range wants {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%s %s lacks %q:\n%s", c.Name, h, want, r.stdout)
				}
			}
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}} {
		if r := runBinary(t, nil, args...); r.code != 0 || !strings.Contains(r.stdout, "commands:\n  status ") || r.stderr != "" {
			t.Fatalf("%v: %v", args, r)
		}
	}
	if r := runBinary(t, nil, "help", "mark-bad"); r.code != 0 || !strings.HasPrefix(r.stdout, "usage: modelslot mark-bad\n") {
		t.Fatalf("help mark-bad: %v", r)
	}
}

// The help a command prints lists exactly the flags its run parses, and the
// table (which the man page and the completions read) has the same ones: a flag
// added to a run but not to its table entry fails here.
func TestHelpAndTableListTheFlagsTheCommandParses(t *testing.T) {
	flagLine := regexp.MustCompile(`(?m)^  (--[a-z-]+|-[a-z])\b`)
	for _, c := range program.All() {
		if c.Provider != "" {
			continue // its flags are its provider's; cmd/modelslot-fleet checks them
		}
		r := runBinary(t, nil, c.Name, "--help")
		var printed []string
		for _, m := range flagLine.FindAllStringSubmatch(r.stdout, -1) {
			printed = append(printed, strings.TrimLeft(m[1], "-"))
		}
		var table []string
		program.DocFlags(c).VisitAll(func(f *flag.Flag) { table = append(table, f.Name) })
		sort.Strings(printed)
		sort.Strings(table)
		if strings.Join(printed, " ") != strings.Join(table, " ") {
			t.Errorf("%s: --help lists %v, the table %v", c.Name, printed, table)
		}
	}
}

func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	e := newEnv(t)
	installV1(e, makeModel(t, 100), "")
	before := runBinary(t, nil, "--config", e.config, "--model", "demo", "status", "--json")
	after := runBinary(t, nil, "status", "--json", "--config", e.config, "--model", "demo", "--log-level", "error")
	if before.code != 0 || after.code != 0 || before.stdout != after.stdout {
		t.Fatalf("flags after the command must act as before it:\nbefore: %v\nafter: %v", before, after)
	}
	// After the command, a global flag overrides the one before it.
	if r := runBinary(t, nil, "--config", e.config, "status", "--config", "/nonexistent.toml"); r.code != exitUsage || !strings.Contains(r.stderr, "/nonexistent.toml") {
		t.Fatalf("status --config /nonexistent.toml: %v", r)
	}
}

func TestUsageErrorIsPrintedOnce(t *testing.T) {
	for _, args := range [][]string{{"status", "--bogus"}, {"--bogus", "status"}, {"install"}, {"frobnicate"}} {
		r := runBinary(t, nil, args...)
		if r.code != exitUsage || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "modelslot: ") ||
			!strings.Contains(r.stderr, "--help") || r.stdout != "" {
			t.Errorf("%v: want one line on stderr naming --help, exit 2; got %v", args, r)
		}
	}
}

var versionLine = regexp.MustCompile(`^modelslot (\S+) \(commit (\S+), go\S+ linux/\w+\)\n$`)

func TestVersionFlagAndCommandAgree(t *testing.T) {
	byFlag, cmd := runBinary(t, nil, "--version"), runBinary(t, nil, "version")
	if byFlag.code != 0 || cmd.code != 0 || byFlag.stdout != cmd.stdout || !versionLine.MatchString(byFlag.stdout) {
		t.Fatalf("--version: %v\nversion: %v", byFlag, cmd)
	}
}

// A build by the Makefile prints the semantic version from git describe or the
// VERSION file, and the commit.
func TestMakeBuildPrintsTheSemanticVersion(t *testing.T) {
	testutil.NeedTool(t, "make", "make")
	out, err := exec.Command("make", "-s", "-C", "../..", "print-version").CombinedOutput()
	if err != nil {
		t.Fatalf("make print-version: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	semver := regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)
	if len(fields) != 2 || !semver.MatchString(fields[0]) {
		t.Fatalf("make print-version: want VERSION COMMIT with a semantic version, got %q", out)
	}
	bin := filepath.Join(t.TempDir(), "modelslot")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/modelslot/modelslot/internal/cli.version="+fields[0]+" -X github.com/modelslot/modelslot/internal/cli.commit="+fields[1], ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").Output()
	m := versionLine.FindStringSubmatch(string(out))
	if err != nil || m == nil || m[1] != fields[0] || m[2] != fields[1] {
		t.Fatalf("--version of a stamped build: %v %q, want %s and %s", err, out, fields[0], fields[1])
	}
}

// Ctrl-C stops an install like SIGTERM does, with the shell's code for it.
func TestSIGINTDuringInstallExits130AndKeepsTheActiveVersion(t *testing.T) {
	e := newEnv(t)
	m1, m2 := makeModel(t, 100), makeModel(t, 300, 32<<20)
	installV1(e, m1, m2)
	r := stopThenSignal(t, e, "install.after-first-file", syscall.SIGINT, installV2(m1, m2)...)
	if r.code != 130 || !strings.Contains(r.stderr, "stopped by a signal") {
		t.Fatalf("want exit 130 with a hint, got %v", r)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q", got)
	}
}

// Scripts written for install --insecure --version V go on working, told to
// move to --label.
func TestInstallVersionFlagStillWorksWithADeprecationWarning(t *testing.T) {
	e := newEnv(t)
	r := e.must(0, "install", "--insecure", "--version", "v1", makeModel(t, 100))
	if !strings.Contains(r.stderr, "install --version is deprecated") || !strings.Contains(r.stderr, "--label v1") {
		t.Fatalf("no deprecation warning: %v", r)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q, want v1", got)
	}
	if r := e.must(exitUsage, "install", "--label", "v2", makeModel(t, 100)); !strings.Contains(r.stderr, "--label goes with --insecure") {
		t.Fatalf("--label without --insecure: %v", r)
	}
}
