// Package crashpoint names every place where modelslot may be killed in the middle
// of a change, so crash tests can enumerate them instead of guessing. A point is
// declared once, next to the step it guards, and does nothing unless the
// environment variable MODELSLOT_CRASHPOINT names it.
//
// MODELSLOT_CRASHPOINT=NAME kills the process with SIGKILL at that point, as a
// power cut or the OOM killer would; NAME:stop stops it with SIGSTOP so a test can
// look at the world while the step is half done, then continue it.
package crashpoint

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// EnvVar is the environment variable that arms a point.
const EnvVar = "MODELSLOT_CRASHPOINT"

// Point is one named crash point.
type Point struct{ name string }

var (
	mu       sync.Mutex
	declared []string
	armed    = os.Getenv(EnvVar)
)

// Declare registers a point; call it in a package-level var so that every point
// is known as soon as the package is linked in. Names must be unique.
func Declare(name string) Point {
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(declared, name) {
		panic(fmt.Sprintf("crashpoint %q declared twice", name))
	}
	declared = append(declared, name)
	return Point{name: name}
}

// Names lists every declared point, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Sorted(slices.Values(declared))
}

// Hit kills or stops the process if this point is armed.
func (p Point) Hit() {
	name, mode, _ := strings.Cut(armed, ":")
	if armed == "" || name != p.name {
		return
	}
	sig := syscall.SIGKILL
	if mode == "stop" {
		sig = syscall.SIGSTOP
	}
	// Tell the test which point fired: it checks that the kill came from the
	// point it armed and not from somewhere else.
	fmt.Fprintf(os.Stderr, "crashpoint %s: %s\n", p.name, sig)
	syscall.Kill(os.Getpid(), sig)
}

// Name returns the point's name.
func (p Point) Name() string { return p.name }
