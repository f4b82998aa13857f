package systemdtest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// cgroupRoot is where the cgroup hierarchies are mounted.
	cgroupRoot = "/sys/fs/cgroup"
	// cgroupPrefix starts the name of every manager's cgroup, then PID-N.
	cgroupPrefix = "modelslot-systemdtest-"
)

// managerCgroup is the cgroup a manager is placed in before systemd starts. Without
// it, a user manager started in the root cgroup treats every process on the machine
// as its own and moves them all into its init.scope (seen on this project's machines).
type managerCgroup struct {
	rel   string   // path relative to each hierarchy's root, e.g. /modelslot-systemdtest-42-1
	join  []string // directories the manager's process joins (name=systemd and/or unified)
	procs string   // the directory whose subtree holds every process the manager started
}

// newManagerCgroup creates a cgroup named name under the calling process's own
// cgroup, in the hierarchies systemd uses to track processes.
func newManagerCgroup(name string) (*managerCgroup, error) {
	paths, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	cg := &managerCgroup{}
	if isUnifiedOnly() {
		cg.rel = filepath.Join(paths[""], name)
		cg.join = []string{filepath.Join(cgroupRoot, cg.rel)}
	} else {
		base, ok := paths["name=systemd"]
		if !ok {
			return nil, errors.New("no name=systemd cgroup hierarchy: mount one, or use a cgroup2-only machine")
		}
		cg.rel = filepath.Join(base, name)
		cg.join = []string{filepath.Join(cgroupRoot, "systemd", cg.rel)}
		if v2, ok := paths[""]; ok && fileExists(filepath.Join(cgroupRoot, "unified", "cgroup.procs")) {
			cg.join = append(cg.join, filepath.Join(cgroupRoot, "unified", v2, name))
		}
	}
	cg.procs = cg.join[0]
	sweepStale(filepath.Dir(cg.rel))
	for _, dir := range cg.join {
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("create cgroup for the test manager: %w", err)
		}
	}
	return cg, nil
}

// selfCgroups maps each hierarchy of /proc/self/cgroup ("" for cgroup2) to our path in it.
func selfCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	defer f.Close()
	paths := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			paths[parts[1]] = parts[2]
		}
	}
	return paths, sc.Err()
}

func isUnifiedOnly() bool {
	return fileExists(filepath.Join(cgroupRoot, "cgroup.controllers"))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// pids lists every process in the manager's cgroup subtree.
func (cg *managerCgroup) pids() []int {
	var pids []int
	_ = filepath.WalkDir(cg.procs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, _ := os.ReadFile(path)
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// killAll sends SIGKILL to whatever is left in the subtree until it is empty, so a
// test never leaves a service behind even when the manager itself was killed.
func (cg *managerCgroup) killAll(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := cg.pids()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL in cgroup %s", pids, cg.procs)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remove deletes the manager's cgroup, and what systemd created below it, in every
// mounted hierarchy (systemd mirrors its tree into the v1 controllers it uses).
func (cg *managerCgroup) remove() error {
	tops := []string{filepath.Join(cgroupRoot, cg.rel)}
	if !isUnifiedOnly() {
		tops, _ = filepath.Glob(filepath.Join(cgroupRoot, "*", cg.rel))
		tops = append(tops, cg.join...)
	}
	var errs []error
	for _, top := range tops {
		errs = append(errs, removeTree(top))
	}
	return errors.Join(errs...)
}

// removeTree removes a cgroup directory tree, deepest first (rmdir only: a cgroup
// directory cannot be removed any other way, and a busy one must stay).
func removeTree(top string) error {
	var dirs []string
	_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, dir := range dirs {
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// sweepStale removes the empty cgroups that managers of dead test processes left
// under parent (a test binary killed by -timeout runs no Cleanup). rmdir cannot
// remove a cgroup that still holds a process, so a live one is safe.
func sweepStale(parent string) {
	pattern := filepath.Join(cgroupRoot, "*", parent, cgroupPrefix+"*")
	if isUnifiedOnly() {
		pattern = filepath.Join(cgroupRoot, parent, cgroupPrefix+"*")
	}
	dirs, _ := filepath.Glob(pattern)
	for _, dir := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), cgroupPrefix), "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && syscall.Kill(n, 0) != nil {
			_ = removeTree(dir)
		}
	}
}
