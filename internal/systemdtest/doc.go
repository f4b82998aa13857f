// Package systemdtest starts a real, private `systemd --user` manager for tests on
// machines where systemd is not PID 1 (see ../shared/notes/systemd-in-tests.md in the
// project's notes, and docs/systemd.md).
//
// Each manager runs in its own mount namespace (a tmpfs over /run/systemd, so the
// host's /run is untouched) and in its own cgroup, created under the caller's, so that
// two managers never share a cgroup tree and a manager never migrates processes it
// did not start. Units live in a per-test directory. Invariant: when the test ends,
// the manager, every process it started and every cgroup it created are gone.
//
// Tests skip, with a message saying why, only when they do not run as root or when
// /lib/systemd/systemd is missing; any other failure to start a manager fails the test.
package systemdtest
