package systemd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A unit whose output is appended to a file (a drop-in, a specifier in the
// path): OutputTail finds the file through the unit's files and returns its
// last lines, stdout's and stderr's, cleaned of escape sequences.
func TestOutputTailReadsTheFileTheUnitAppendsTo(t *testing.T) {
	b := newTestbed(t)
	dir := t.TempDir()
	b.h.WriteUnit(t, "talk.service.d/out.conf", fmt.Sprintf("[Service]\nStandardOutput=append:%s/%%N.log\nStandardError=inherit\n", dir))
	b.h.WriteUnit(t, "talk.service", "[Service]\nType=oneshot\nStandardOutput=journal\n"+
		`ExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do echo line $i; done; printf "\033[31mred\033[0m\tdone\n"; echo the end >&2'`+"\n")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, "talk.service"); err != nil {
		t.Fatalf("run talk.service: %v", err)
	}
	got, err := b.m.OutputTail(ctx, "talk.service", 3)
	if err != nil {
		t.Fatalf("OutputTail: %v", err)
	}
	if want := []string{"line 5", "red done", "the end"}; !slices.Equal(got, want) {
		t.Fatalf("OutputTail = %q, want %q", got, want)
	}
}

// With its output in the journal and no journald running (as in these tests),
// OutputTail says the output is not kept, as an error kind.
func TestOutputTailWithoutJournaldIsErrOutputNotKept(t *testing.T) {
	if _, err := os.Stat(journalSocket); err == nil {
		t.Skip("journald runs on this machine; this test is for one without it")
	}
	b := newTestbed(t)
	unit := b.unit(t, "quiet.service", "")
	ctx := stepCtx(t, 10*time.Second)
	if err := b.m.Restart(ctx, unit); err != nil {
		t.Fatal(err)
	}
	if lines, err := b.m.OutputTail(ctx, unit, 10); !errors.Is(err, ErrOutputNotKept) {
		t.Fatalf("OutputTail = %q, %v; want ErrOutputNotKept", lines, err)
	}
}

// Of a big file only the end is read: the lines returned are the last ones,
// and the partial line where reading began is dropped.
func TestFileTailReadsOnlyTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	var b strings.Builder
	for i := range 100_000 { // ~1.3 MB
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := fileTail(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(lines); n < 5000 || n > outputReadMax/len("line 000000\n")+1 {
		t.Fatalf("read %d lines, want those in the last %d bytes", n, outputReadMax)
	}
	if lines[len(lines)-1] != "line 099999" || len(lines[0]) != len("line 000000") {
		t.Fatalf("first %q, last %q: want whole lines ending with the file's last", lines[0], lines[len(lines)-1])
	}
	if got := lastLines(lines, 2); !slices.Equal(got, []string{"line 099998", "line 099999"}) {
		t.Fatalf("lastLines = %q", got)
	}
}

func TestSplitLinesCleansOutput(t *testing.T) {
	long := strings.Repeat("é", outputLineMax)
	got := splitLines([]byte("plain\r\n\x1b[1;32mgreen\x1b[0m\tok\n\n  \n\x00bell\x07\xff\n" + long + "\n"))
	if len(got) != 4 || got[0] != "plain" || got[1] != "green ok" || got[2] != "bell?" {
		t.Fatalf("splitLines = %q", got)
	}
	if !strings.HasSuffix(got[3], "…") || len(got[3]) > outputLineMax+len("…") || !strings.HasPrefix(got[3], "éé") {
		t.Fatalf("long line kept as %d bytes %.20q…", len(got[3]), got[3])
	}
}

func TestOutputPathsFollowsOverridesAndSpecifiers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	frag := write("a.service", "[Unit]\nStandardOutput=file:/not/service/section\n[Service]\nStandardOutput=append:/var/log/old.log\n# StandardError=file:/commented\n")
	drop := write("b.conf", "[Service]\nStandardOutput=\nStandardOutput=append:/var/log/%p/%i-%N.log\nStandardError=truncate:/var/log/\\\n  err.log\n")
	got, err := outputPaths([]string{frag, drop}, "infer@gpu0.service")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/var/log/infer/gpu0-infer@gpu0.log", "/var/log/ err.log"}; !slices.Equal(got, want) {
		t.Fatalf("outputPaths = %q, want %q", got, want)
	}
	if _, err := outputPaths([]string{write("c.service", "[Service]\nStandardOutput=append:%h/x.log\n")}, "c.service"); !errors.Is(err, ErrOutputNotKept) {
		t.Fatalf("an unresolved specifier: %v, want ErrOutputNotKept", err)
	}
}
