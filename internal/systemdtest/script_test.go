package systemdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// scripts/user-manager.sh is what `make demo` uses on a machine without systemd:
// it must start a manager that answers, print the env to reach it, and stop it
// without leaving a process or a cgroup behind.
func TestUserManagerScriptStartsAndStops(t *testing.T) {
	Need(t)
	script, err := filepath.Abs("../../scripts/user-manager.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "msdscript")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(script, append(args, dir)...).CombinedOutput()
		if err != nil {
			t.Fatalf("user-manager.sh %s: %v\n%s", args[0], err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { _, _ = exec.Command(script, "stop", dir).CombinedOutput() })
	env := scriptEnv(run("start"))
	if env["MODELSLOT_SYSTEMD_BUS"] != "unix:path="+filepath.Join(dir, "run", "systemd", "private") {
		t.Fatalf("env = %v", env)
	}
	if again := scriptEnv(run("start")); again["XDG_RUNTIME_DIR"] != env["XDG_RUNTIME_DIR"] {
		t.Errorf("second start printed %v", again)
	}
	unit := "[Service]\nExecStart=/bin/sleep 600\n"
	if err := os.WriteFile(filepath.Join(env["MODELSLOT_UNIT_DIR"], "s.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	systemctl := func(args ...string) string {
		cmd := exec.Command("systemctl", append([]string{"--user"}, args...)...)
		cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+env["XDG_RUNTIME_DIR"])
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("systemctl %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	systemctl("daemon-reload")
	systemctl("start", "s.service")
	pid := systemctl("show", "--value", "-p", "MainPID", "s.service")
	cgroups, _ := os.ReadFile(filepath.Join(dir, "cgroups"))
	run("stop")
	if n, _ := strconv.Atoi(pid); n != 0 && alive(n) {
		t.Errorf("service %s outlived stop", pid)
	}
	for _, cg := range strings.Fields(string(cgroups)) {
		if fileExists(cg) {
			t.Errorf("cgroup %s left behind", cg)
		}
	}
	if exec.Command(script, "status", dir).Run() == nil {
		t.Error("status says running after stop")
	}
}

// scriptEnv parses the script's `export K=V` lines.
func scriptEnv(out string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			env[k] = v
		}
	}
	return env
}
