package simulate

import "syscall"

// RaiseFileLimit lifts the process's open-file limit for a large fleet: every
// agent holds a socket to the broker, and its installs' connections to the
// repository, locks and state files on top (10,000 devices ran out of Go's
// default, the hard limit of 20,000 here). As root the hard limit is raised
// too, to fs.nr_open's default; otherwise the soft limit goes up to the hard
// one. Children started afterwards (a broker, a web server) inherit it.
func RaiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	want := syscall.Rlimit{Cur: max(l.Max, 1<<20), Max: max(l.Max, 1<<20)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return nil
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}
