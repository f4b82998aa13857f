package systemd

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
)

// outputPaths reads the unit files in the order systemd applies them (the
// fragment, then the drop-ins) and returns the distinct files that
// StandardOutput= and StandardError= name (file:, append:, truncate:), stdout's
// first. A later assignment overrides an earlier one, an empty one resets it.
func outputPaths(files []string, unit string) ([]string, error) {
	var stdout, stderr string
	for _, f := range files {
		if f == "" {
			continue
		}
		if err := scanService(f, func(key, value string) {
			switch key {
			case "StandardOutput":
				stdout = value
			case "StandardError":
				stderr = value
			}
		}); err != nil {
			return nil, err
		}
	}
	var paths []string
	for _, v := range []string{stdout, stderr} {
		kind, path, ok := strings.Cut(v, ":")
		if !ok || !isFileOutput(kind) {
			continue
		}
		p, err := expandSpecifiers(path, unit)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no StandardOutput=/StandardError= file in %s (changed since the last daemon-reload?): %w",
			strings.Join(files, ", "), ErrOutputNotKept)
	}
	return paths, nil
}

// scanService calls fn for every assignment in the [Service] section of a unit
// file; lines ending in a backslash continue on the next.
func scanService(path string, fn func(key, value string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read unit file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inService, line := false, ""
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line += cont + " "
			continue
		}
		line, text = "", line+text
		switch {
		case text == "" || text[0] == '#' || text[0] == ';':
		case text[0] == '[':
			inService = text == "[Service]"
		case inService:
			if k, v, ok := strings.Cut(text, "="); ok {
				fn(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read unit file %s: %w", path, err)
	}
	return nil
}

// expandSpecifiers resolves the unit-name specifiers an output path may use
// (%n, %N, %p, %i, %%); any other specifier is refused rather than guessed.
func expandSpecifiers(path, unit string) (string, error) {
	if !strings.Contains(path, "%") {
		return path, nil
	}
	base := unit
	if i := strings.LastIndexByte(unit, '.'); i > 0 {
		base = unit[:i]
	}
	prefix, instance, _ := strings.Cut(base, "@")
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] != '%' {
			b.WriteByte(path[i])
			continue
		}
		if i++; i == len(path) {
			return "", fmt.Errorf("output path %q ends in a lone %%", path)
		}
		switch path[i] {
		case 'n':
			b.WriteString(unit)
		case 'N':
			b.WriteString(base)
		case 'p':
			b.WriteString(prefix)
		case 'i':
			b.WriteString(instance)
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("output path %q uses the specifier %%%c, which modelslot does not resolve: %w", path, path[i], ErrOutputNotKept)
		}
	}
	return b.String(), nil
}
