package systemd

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot and cgroupRoot are where /proc and the cgroup hierarchies live.
var (
	procRoot   = "/proc"
	cgroupRoot = "/sys/fs/cgroup"
)

// ProcessRSS sums the resident memory (VmRSS) of a unit's processes and says how
// many it counted. It is the fallback for MemoryCurrent, which systemd cannot
// report when its manager has no memory controller (cgroup v1 hierarchies, a
// user manager in a container). The processes are those of the unit's cgroup
// (found in the cgroup2 or name=systemd hierarchy) or, when that cannot be read
// (another cgroup namespace), mainPID and its descendants. Shared pages count
// once per process, so the figure errs high, which is the safe side of a limit.
func ProcessRSS(controlGroup string, mainPID uint32) (total uint64, processes int) {
	pids := cgroupPIDs(controlGroup)
	if len(pids) == 0 && mainPID != 0 {
		pids = processTree(int(mainPID))
	}
	for _, pid := range pids {
		if rss, ok := vmRSS(pid); ok {
			total += rss
			processes++
		}
	}
	return total, processes
}

// cgroupPIDs lists the processes in the cgroup and its children.
func cgroupPIDs(controlGroup string) []int {
	if controlGroup == "" {
		return nil
	}
	for _, h := range []string{"", "unified", "systemd"} {
		dir := filepath.Join(cgroupRoot, h, controlGroup)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		var pids []int
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() == "cgroup.procs" {
				pids = append(pids, readPIDs(path)...)
			}
			return nil
		})
		return pids
	}
	return nil
}

func readPIDs(path string) []int {
	data, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processTree returns root and every process descending from it.
func processTree(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir(procRoot)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// parentPID reads the PPid of /proc/PID/stat; the command name may hold spaces
// and parentheses, so fields are counted after its last ')'.
func parentPID(pid int) (int, bool) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// vmRSS reads VmRSS of /proc/PID/status in bytes; kernel threads and zombies have none.
func vmRSS(pid int) (uint64, bool) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "12345 kB"
		if len(fields) == 0 {
			return 0, false
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		return kb * 1024, err == nil
	}
	return 0, false
}
