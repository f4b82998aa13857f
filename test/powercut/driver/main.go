// Command driver runs inside the power-cut guest (test/powercut): it loops real
// modelslot updates on the virtio ext4 disk and prints, on the serial console,
// each step before it starts (BEGIN) and after modelslot acknowledged it (ACK),
// so the host knows which steps must survive a cut at any moment.
//
//	START <slot> <version> <installed>          the active slot found at boot
//	BEGIN <n> <op> <version> <slot> <installed> the step and the result it must give
//	ACK <n> <op> <version> <slot> <installed>   modelslot returned 0 and the state says so
//	ERROR <n> <text>                            the step failed: the host counts a failure
//
// <installed> is the slot's installed_at (or "new" for a copy not made yet): it
// tells two installs of the same version into the same slot apart, so a disk
// that lost every step back to an identical older state is still caught.
//
// `driver gen DIR` writes the test models on the host, identical to the ones
// the guest installs, so the host can pre-install v1 into the base image.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelslot/modelslot/slots"
)

// Paths inside the guest, set up by test/powercut/init.
const (
	modelslotBin = "/bin/modelslot"
	configFile   = "/etc/modelslot.toml"
	modelsDir    = "/models"
	stateDir     = "/mnt/ms/demo"
	modelName    = "demo"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "gen" {
		if err := GenerateModels(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "driver gen:", err)
			os.Exit(1)
		}
		return
	}
	if err := GenerateModels(modelsDir); err != nil {
		halt(0, "generate models: %v", err)
	}
	d := &driver{rng: rand.New(rand.NewPCG(seed(), 1))}
	st := d.state(0)
	say("START %s %s %s", st.Active, version(st, st.Active), installed(st, st.Active))
	for n := 1; ; n++ {
		d.step(n, st)
		st = d.state(n)
	}
}

type driver struct {
	rng    *rand.Rand
	lastOp string
	next   int // index into Versions of the next label to install
}

// step chooses the next operation, announces it with the result it must give,
// runs it and acknowledges it. Every step moves the link, so a lost step is
// always visible on the disk.
func (d *driver) step(n int, st *slots.State) {
	op, ver, slot, args := d.choose(st)
	inst := installed(st, slot)
	if op == "install" && version(st, slot) != ver {
		inst = "new" // copied now: installed_at is not known yet
	}
	say("BEGIN %d %s %s %s %s", n, op, ver, slot, inst)
	start := time.Now()
	out, err := exec.Command(modelslotBin, append([]string{"--config", configFile}, args...)...).CombinedOutput()
	if err != nil {
		halt(n, "modelslot %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	after := d.state(n)
	if after.Active != slot || version(after, slot) != ver {
		halt(n, "%s %s returned 0 but the state says active %s %s, want %s %s",
			op, ver, after.Active, version(after, after.Active), slot, ver)
	}
	d.lastOp = op
	say("ACK %d %s %s %s %s %dms", n, op, ver, slot, installed(after, slot), time.Since(start).Milliseconds())
}

// choose picks an install of the next label (copy into the inactive slot), a
// rollback after an install, or, after a rollback, sometimes the reinstall of
// the version just left (which modelslot reactivates without copying).
func (d *driver) choose(st *slots.State) (op, ver, slot string, args []string) {
	inactive := slots.Other(st.Active)
	switch {
	case d.lastOp == "install" && st.Previous != "" && st.Slots[st.Previous].Status == slots.Good && d.rng.IntN(3) == 0:
		prev := st.Previous
		return "rollback", version(st, prev), prev, []string{"rollback"}
	case d.lastOp == "rollback" && d.rng.IntN(2) == 0:
		ver = version(st, inactive)
	default:
		for ver == "" || ver == version(st, st.Active) {
			ver = Versions[d.next]
			d.next = (d.next + 1) % len(Versions)
		}
	}
	return "install", ver, inactive, []string{"install", "--insecure", "--label", ver, filepath.Join(modelsDir, ver)}
}

// state reads state.json without the lock and without recovery: the driver
// only looks, modelslot alone writes.
func (d *driver) state(n int) *slots.State {
	v, err := slots.OpenView(slots.Config{Dir: stateDir, Model: modelName})
	if err != nil {
		halt(n, "read state: %v", err)
	}
	return v.State()
}

func version(st *slots.State, slot string) string {
	if s := st.Slots[slot]; s != nil {
		return s.Version
	}
	return ""
}

func installed(st *slots.State, slot string) string {
	if s := st.Slots[slot]; s != nil && !s.InstalledAt.IsZero() {
		return s.InstalledAt.UTC().Format(time.RFC3339Nano)
	}
	return "none"
}

// say prints one line on the console and waits until the UART has sent it
// (tcdrain): the host must see BEGIN before the step starts and ACK before the
// next one, or a lagging console would make a later step's result look like a
// lost acknowledgement.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
	const tcsbrk = 0x5409 // ioctl(fd, TCSBRK, 1) is tcdrain(fd)
	syscall.Syscall(syscall.SYS_IOCTL, os.Stdout.Fd(), tcsbrk, 1)
}

// halt reports a failed step and stops the loop; the host sees ERROR and keeps
// the image. The driver runs as PID 1, so it must not exit (the kernel would
// panic), and it sleeps rather than block forever, which the runtime would call
// a deadlock.
func halt(n int, format string, args ...any) {
	say("ERROR %d %s", n, fmt.Sprintf(format, args...))
	for {
		time.Sleep(time.Hour)
	}
}

// seed comes from the kernel command line (pcseed=N), so a failing cut can be
// replayed with the same sequence of steps.
func seed() uint64 {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "pcseed="); ok {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return uint64(time.Now().UnixNano())
}
