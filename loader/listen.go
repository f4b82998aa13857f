package loader

import (
	"errors"
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listen returns the first socket systemd passed (socket activation), else a
// TCP listener on addr. Under socket activation systemd keeps the socket open
// across restarts of the server, so connections made while it restarts wait in
// the socket's backlog instead of being refused; a server draining on SIGTERM
// should close its listener first, then finish its requests.
func Listen(addr string) (net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("sockets passed by systemd: %w", err)
	}
	for _, ln := range lns {
		if ln != nil {
			return ln, nil
		}
	}
	if addr == "" {
		return nil, errors.New("systemd passed no socket and no address was given: give HOST:PORT or a .socket unit")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
