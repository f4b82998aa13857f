package systemd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Bounds of OutputTail: what it reads, and what it returns.
const (
	outputReadMax  = 64 << 10 // bytes read from the end of an output file
	journalReadMax = 1 << 20  // bytes of journalctl output read at most
	outputLineMax  = 1024     // bytes kept of one line
	journalTimeout = 5 * time.Second
)

// ErrOutputNotKept means the unit's output does not go where OutputTail can
// read it: not to the journal of a running journald, not to a file.
var ErrOutputNotKept = errors.New("the unit's output is kept neither in a running journal nor in a file")

// journalSocket exists while journald runs.
var journalSocket = "/run/systemd/journal/socket"

// OutputTail returns up to n of the last lines the unit's processes printed,
// oldest first, without control characters, for failure reports. Where the
// output goes is read from the unit: StandardOutput=/StandardError= of kind
// journal (read with journalctl, if journald runs) or file:, append: or
// truncate: PATH. The path is not a D-Bus property in systemd 252 (only the
// kind "append" is, and StandardOutputFileDescriptorName stays empty), so it
// is read from the unit's files (FragmentPath, DropInPaths). Of a file, at
// most its last 64 KiB are read. When stdout and stderr go to two files, the
// lines of stdout come first (their interleaving is not recorded anywhere).
// It returns ErrOutputNotKept (errors.Is) when there is nothing to read.
func (m *Manager) OutputTail(ctx context.Context, unit string, n int) ([]string, error) {
	conn, err := m.connection(ctx)
	if err != nil {
		return nil, err
	}
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return nil, fmt.Errorf("read the unit files of %s: %w", unit, err)
	}
	typed, err := conn.GetUnitTypePropertiesContext(ctx, unit, unitType(unit))
	if err != nil {
		return nil, fmt.Errorf("read where %s sends its output: %w", unit, err)
	}
	stdout, stderr := str(typed["StandardOutput"]), str(typed["StandardError"])
	if stderr == "inherit" {
		stderr = stdout
	}
	if isFileOutput(stdout) || isFileOutput(stderr) {
		files := append([]string{str(props["FragmentPath"])}, strs(props["DropInPaths"])...)
		paths, err := outputPaths(files, unit)
		if err != nil {
			return nil, fmt.Errorf("find the output file of %s: %w", unit, err)
		}
		return fileTails(paths, n)
	}
	if strings.HasPrefix(stdout, "journal") || strings.HasPrefix(stderr, "journal") {
		return m.journalTail(ctx, unit, n)
	}
	return nil, fmt.Errorf("%s: StandardOutput=%s, StandardError=%s: %w", unit, stdout, stderr, ErrOutputNotKept)
}

func isFileOutput(kind string) bool {
	return kind == "file" || kind == "append" || kind == "truncate"
}

// fileTails reads the last lines of each distinct path, in order.
func fileTails(paths []string, n int) ([]string, error) {
	var lines []string
	for _, p := range paths {
		l, err := fileTail(p)
		if err != nil {
			return nil, err
		}
		lines = append(lines, l...)
	}
	return lastLines(lines, n), nil
}

// fileTail reads the lines in the last outputReadMax bytes of a regular file;
// a partial first line is dropped. O_NONBLOCK: a path that became a FIFO
// must not block the report.
func fileTail(path string) ([]string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open the unit's output file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the unit's output %s is not a regular file; %w", path, ErrOutputNotKept)
	}
	off := max(fi.Size()-outputReadMax, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, outputReadMax))
	if err != nil {
		return nil, fmt.Errorf("read the unit's output file %s: %w", path, err)
	}
	if off > 0 {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return splitLines(data), nil
}

// journalTail asks journalctl for the unit's last n lines, when journald runs.
func (m *Manager) journalTail(ctx context.Context, unit string, n int) ([]string, error) {
	if _, err := os.Stat(journalSocket); err != nil {
		return nil, fmt.Errorf("%s logs to the journal, but journald does not run (%s is missing): %w", unit, journalSocket, ErrOutputNotKept)
	}
	ctx, cancel := context.WithTimeout(ctx, journalTimeout)
	defer cancel()
	match := "--unit=" + unit
	if m.settings.Scope == ScopeUser {
		match = "--user-unit=" + unit
	}
	cmd := exec.CommandContext(ctx, "journalctl", match, "-n", strconv.Itoa(n), "-o", "cat", "--no-pager", "-q")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run journalctl for %s: %w", unit, err)
	}
	data, _ := io.ReadAll(io.LimitReader(out, journalReadMax))
	io.Copy(io.Discard, out) // let journalctl finish; ctx bounds it
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("journalctl %s: %w", match, err)
	}
	return lastLines(splitLines(data), n), nil
}

// csi matches ANSI escape sequences (colours, cursor moves) as a whole, so
// that no "[31m" is left behind when ESC itself is dropped.
var csi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// splitLines splits output into lines fit for an event: valid UTF-8, control
// characters dropped (a tab becomes a space), each at most outputLineMax
// bytes, empty lines left out.
func splitLines(data []byte) []string {
	var lines []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = csi.ReplaceAllString(strings.ToValidUTF8(line, "?"), "")
		line = strings.Map(func(r rune) rune {
			switch {
			case r == '\t':
				return ' '
			case unicode.IsControl(r):
				return -1
			}
			return r
		}, line)
		if len(line) > outputLineMax {
			line = strings.ToValidUTF8(line[:outputLineMax], "") + "…"
		}
		if strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return slices.Clip(lines)
}

func strs(v any) []string {
	s, _ := v.([]string)
	return s
}
