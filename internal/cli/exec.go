package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// ErrNotInstalled is the error of a provided command whose binary is not
// installed (exit 2: retrying cannot help, installing it does).
var ErrNotInstalled = errors.New("is not installed")

// execProvider replaces this process with provider, given the same
// arguments: its output, exit code and signals are the command's. It returns
// only when provider cannot be found or run.
func execProvider(command, provider string, args []string) error {
	path, err := findProvider(provider)
	if err != nil {
		return fmt.Errorf("%s needs %w: install the %s package", command, err, provider)
	}
	err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}

// findProvider looks for the binary next to the running one first (the
// packages install both in one directory, and a build puts them side by
// side), then in $PATH.
func findProvider(name string) (string, error) {
	var beside string
	if self, err := os.Executable(); err == nil {
		beside = filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(beside); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return beside, nil
		}
	}
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%s, which %w (not at %s, nor in $PATH)", name, ErrNotInstalled, beside)
}
