package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/internal/config"
	"github.com/modelslot/modelslot/internal/testutil"
)

// manSections splits the generated modelslot(1) by its .SS headings.
func manSections(t *testing.T) (page string, sections map[string]string) {
	t.Helper()
	var b bytes.Buffer
	program.WriteMan(&b)
	page = b.String()
	sections = map[string]string{}
	parts := strings.Split(page, "\n.SS ")
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "\n")
		sections[name] = body
	}
	return page, sections
}

// The man page has a section for every command the help lists, and in it
// every flag of the command's flag set.
func TestManPageHasEveryCommandAndFlag(t *testing.T) {
	page, sections := manSections(t)
	for _, c := range program.Visible() {
		body, ok := sections[c.Name]
		if !ok {
			t.Errorf("no section for %s", c.Name)
			continue
		}
		program.DocFlags(c).VisitAll(func(f *flag.Flag) {
			if cli.GlobalFlagNames[f.Name] && !c.OwnsFlag(f.Name) {
				return // in GLOBAL OPTIONS
			}
			if !strings.Contains(body, `\fB`+cli.RoffCode(cli.Dashed(f.Name))+`\fR`) {
				t.Errorf("section %s lacks flag --%s", c.Name, f.Name)
			}
		})
		if len(c.Examples) == 0 || !strings.Contains(body, cli.RoffCode("modelslot "+c.Examples[0].Cmd)) {
			t.Errorf("section %s lacks an example", c.Name)
		}
	}
	for _, name := range []string{"config", "model", "log-level", "version"} {
		if !strings.Contains(page, `\fB`+cli.RoffCode("--"+name)+`\fR`) {
			t.Errorf("the page lacks the global flag --%s", name)
		}
	}
	for _, c := range program.All() {
		if _, listed := sections[c.Name]; c.Hidden && listed {
			t.Errorf("hidden command %s has a section", c.Name)
		}
	}
}

// gen-man writes a page that man renders without a warning, and the rendered
// text names every command.
func TestGenManRendersWithoutWarnings(t *testing.T) {
	testutil.NeedTool(t, "man", "man-db")
	dir := t.TempDir()
	if r := runBinary(t, nil, "gen-man", dir); r.code != 0 {
		t.Fatalf("gen-man: %v", r)
	}
	text := renderMan(t, filepath.Join(dir, "modelslot.1"))
	for _, c := range program.Visible() {
		if !strings.Contains(text, "modelslot "+c.Name) {
			t.Errorf("the rendered page lacks modelslot %s", c.Name)
		}
	}
}

// renderMan renders a man page as man-db does and fails on any warning.
func renderMan(t *testing.T, page string) string {
	t.Helper()
	cmd := exec.Command("man", "--warnings", "-l", page)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=", "PAGER=cat", "MANPAGER=cat")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("man --warnings -l %s: %v\n%s", page, err, errb.String())
	}
	return out.String()
}

// genCompletion writes the completion script for shell into a file.
func genCompletion(t *testing.T, shell string) string {
	t.Helper()
	r := runBinary(t, nil, "gen-completion", shell)
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("gen-completion %s: %v", shell, r)
	}
	p := filepath.Join(t.TempDir(), "modelslot."+shell)
	if err := os.WriteFile(p, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// bash completes commands, a command's flags (not the deprecated ones), flag
// values, and skips a global flag's value when it looks for the command.
func TestBashCompletion(t *testing.T) {
	testutil.NeedTool(t, "bash", "bash")
	script := genCompletion(t, "bash")
	for line, want := range map[string]string{
		"modelslot ins":                     "install",
		"modelslot --config x.toml ver":     "verify version",
		"modelslot verify --slot ":          "a b",
		"modelslot --log-level ":            "debug error info warn",
		"modelslot install --ins":           "--insecure",
		"modelslot install --":              "--allow-downgrade --config --insecure --label --log-level --model",
		"modelslot help mark-":              "mark-bad mark-good",
		"modelslot --model demo rollback -": "--config --if-trial --log-level --model --unit",
	} {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _modelslot; printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' '`
		out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script}, words...)...).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%q completes to %q (%v), want %q", line, got, err, want)
		}
	}
}

func TestFishCompletion(t *testing.T) {
	testutil.NeedTool(t, "fish", "fish")
	script := genCompletion(t, "fish")
	for line, want := range map[string]string{
		"modelslot ins":            "install",
		"modelslot verify --slot ": "a b",
		"modelslot install --la":   "--label",
		"modelslot help mark-":     "mark-bad mark-good",
	} {
		out, err := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2] | cut -f1 | sort | string join " "; true`, script, line).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("fish: %q completes to %q (%v), want %q", line, got, err, want)
		}
	}
}

// zsh has no way to drive completion without a terminal; the script must at
// least parse, and name every command and flag.
func TestZshCompletionParses(t *testing.T) {
	testutil.NeedTool(t, "zsh", "zsh")
	script := genCompletion(t, "zsh")
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	text := readFile(script)
	for _, c := range program.Visible() {
		_, line, found := strings.Cut(text, "\t\t"+c.Name+") _arguments")
		if !found {
			t.Errorf("zsh completion lacks %s", c.Name)
			continue
		}
		line, _, _ = strings.Cut(line, "\n")
		if _, noFiles := program.ArgChoices(c.Name); noFiles == strings.HasSuffix(line, "'*:file:_files' ;;") {
			t.Errorf("zsh: %s completes files: %v, want %v", c.Name, !noFiles, noFiles)
		}
		for _, f := range program.CompletionFlags(c) {
			if !strings.Contains(text, "'"+cli.Dashed(f)+"[") {
				t.Errorf("zsh completion lacks %s of %s", cli.Dashed(f), c.Name)
			}
		}
	}
}

// modelslot.toml(5) names every setting docs/config.md shows, and renders.
func TestConfigManPageHasEverySetting(t *testing.T) {
	page := readFile(filepath.Join("..", "..", "packaging", "man", "modelslot.toml.5"))
	block := readFile(filepath.Join("..", "..", "docs", "config.md"))
	block = block[strings.Index(block, "```toml"):]
	block = block[:strings.Index(block[3:], "```")]
	setting := regexp.MustCompile(`(?m)^\s*([a-z_]+)\s*=|^\s*(\[\[?[a-z.]+\]\]?)`)
	n := 0
	for _, m := range setting.FindAllStringSubmatch(block, -1) {
		key := m[1]
		if key == "" {
			key = m[2]
		}
		n++
		if !strings.Contains(page, ".B "+key+"\n") && !strings.Contains(page, ".SH "+key+"\n") {
			t.Errorf("modelslot.toml.5 lacks %s", key)
		}
	}
	if n < 30 {
		t.Fatalf("found only %d settings in docs/config.md: is the toml block still there?", n)
	}
	if _, err := exec.LookPath("man"); err == nil {
		renderMan(t, filepath.Join("..", "..", "packaging", "man", "modelslot.toml.5"))
	}
}

// The config the package installs as /etc/modelslot/modelslot.toml is valid
// as shipped: the agent the preset enables starts with it.
func TestShippedExampleConfigIsValid(t *testing.T) {
	cfg, err := config.Parse([]byte(readFile(filepath.Join("..", "..", "packaging", "modelslot.toml"))))
	if err != nil {
		t.Fatalf("packaging/modelslot.toml: %v", err)
	}
	if len(cfg.Models) != 1 || cfg.Models[0].Name != "example" {
		t.Fatalf("want the one model example, got %+v", cfg.Models)
	}
}
