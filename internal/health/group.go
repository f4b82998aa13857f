package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainFor bounds how long output is still read once a check's shell exited
// and its group was killed. Only a process that left the group (setsid) can
// still hold the pipe then; waiting for its EOF would let it hold up the verdict.
const drainFor = 200 * time.Millisecond

// runGroup runs cmd in a process group of its own, its stdout and stderr copied
// into out, and kills the whole group (SIGKILL) when ctx ends or, after the
// shell exited, whatever of the group is left. A check must not leak processes:
// modelslot runs in its own unit (the agent) or in a person's session, and a
// check's leftovers would live on in that cgroup, counted against its limits and
// stopped only with it. It returns ctx.Err() when the group was killed because
// ctx ended, else cmd.Wait's error.
func runGroup(ctx context.Context, cmd *exec.Cmd, out io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create the output pipe: %w", err)
	}
	defer r.Close()
	// An *os.File is handed to the child as it is: exec starts no copying
	// goroutine, so Wait returns when the shell exits, not at the pipe's EOF.
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start /bin/sh: %w", err)
	}
	copied := make(chan struct{})
	go func() { io.Copy(out, r); close(copied) }()
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { waitExited(pid); close(exited) }()
	var stopped error
	select {
	case <-exited:
	case <-ctx.Done():
		killGroup(pid)
		<-exited
		stopped = ctx.Err()
	}
	// The shell is a zombie now, not yet reaped: its pid, the group's id, cannot
	// have been reused, so this kills only what the check started.
	killGroup(pid)
	err = cmd.Wait()
	r.SetReadDeadline(time.Now().Add(drainFor))
	<-copied
	if stopped != nil {
		return stopped
	}
	return err
}

// waitExited blocks until pid has exited, without reaping it (WNOWAIT).
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// killGroup sends SIGKILL to the process group pgid; a group already gone
// (ESRCH) is what we want.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
