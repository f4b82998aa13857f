"""Serve a model that modelslot updates, from a Python inference server.

Standard library only (Python 3.9+), so any server can copy or import it. It
does for a Python server what the Go package `loader` does for a Go one:

* systemd: `notify()` and its shorthands send READY=1, RELOADING=1,
  WATCHDOG=1, STOPPING=1 and STATUS= to $NOTIFY_SOCKET; outside systemd
  (no $NOTIFY_SOCKET) they do nothing and return False, so the same server
  runs under systemd and by hand. `watchdog_interval()` reads $WATCHDOG_USEC.
* socket activation: `listen_sockets()` takes the sockets systemd passed
  ($LISTEN_FDS), so a restart by modelslot refuses no connection.
* the slot: `Slot.resolve(link)` resolves modelslot's link once and keeps a
  handle on the directory it named, so one load reads one version even if the
  link is swapped meanwhile; the version comes from the slot's manifest
  (.modelslot/manifest.json), else from config.json of a bare directory.
* reload: `Holder` loads the model from the link, and on SIGHUP (systemd's
  ExecReload=/bin/kill -HUP $MAINPID, activation = "reload") loads the new
  slot in the background and swaps it in; the old model keeps serving until
  the new one loaded, and keeps serving if it fails to load.

The answer to modelslot's probe should carry the served version
(`holder.current().slot.version`) so that modelslot can tell the new process
from the old one.
"""

import json
import os
import signal
import socket
import threading
import time

__all__ = [
    "MANIFEST_PATH", "notify", "ready", "reloading", "stopping", "watchdog",
    "status", "watchdog_interval", "listen_sockets", "Slot", "SlotError",
    "Holder", "Loaded",
]

# Where modelslot stores the manifest a slot was verified against.
MANIFEST_PATH = ".modelslot/manifest.json"


# --- systemd notification -------------------------------------------------

def notify(*states, unset_environment=False):
    """Send states ("READY=1", "STATUS=...") to systemd in one datagram.

    Returns False without doing anything when $NOTIFY_SOCKET is unset (not
    under systemd, or Type= is not notify); raises OSError when the socket is
    set but the send fails.
    """
    path = os.environ.get("NOTIFY_SOCKET", "")
    if unset_environment:
        os.environ.pop("NOTIFY_SOCKET", None)
    if not path:
        return False
    if path[0] == "@":  # an abstract socket: a leading NUL byte
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(path)
        s.sendall("\n".join(states).encode())
    return True


def _monotonic_usec():
    return "MONOTONIC_USEC=%d" % (time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)


def ready(status_text=None):
    """READY=1: the model serves (after start, and after each reload)."""
    return notify("READY=1", *(["STATUS=" + status_text] if status_text else []))


def reloading(status_text=None):
    """RELOADING=1, with MONOTONIC_USEC as Type=notify-reload wants it."""
    states = ["RELOADING=1", _monotonic_usec()]
    return notify(*(states + (["STATUS=" + status_text] if status_text else [])))


def stopping():
    return notify("STOPPING=1")


def watchdog():
    """WATCHDOG=1: send it only while the server really answers."""
    return notify("WATCHDOG=1")


def status(text):
    return notify("STATUS=" + text)


def watchdog_interval():
    """The unit's WatchdogSec= in seconds, or None when no watchdog is set
    for this process ($WATCHDOG_PID names another one)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6


# --- socket activation ----------------------------------------------------

_LISTEN_FDS_START = 3


def listen_sockets(unset_environment=True):
    """The sockets systemd passed to this process, in the order of the
    socket unit's Listen*= lines; [] when none were passed (then listen
    yourself). The environment is cleared so child processes do not take
    them too."""
    pid, fds = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    if unset_environment:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(key, None)
    if pid != str(os.getpid()) or not fds.isdigit():
        return []
    socks = []
    for fd in range(_LISTEN_FDS_START, _LISTEN_FDS_START + int(fds)):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


# --- the slot ---------------------------------------------------------------

class SlotError(Exception):
    """The link does not lead to a model this module can name a version for."""


class Slot:
    """One resolved model directory: a handle on it, and what its manifest
    says. Read the model's files through `open()` (or under `path`, which
    stays the directory the link named when it was resolved)."""

    def __init__(self, path, fd, manifest, bare):
        self.path = path
        self._fd = fd
        self.manifest = manifest
        self.version = manifest["version"]
        self.model = manifest.get("model", "")
        self.bare = bare  # no manifest: a plain directory, version from config.json

    @classmethod
    def resolve(cls, link):
        """Resolve link once: a modelslot link, or a plain model directory."""
        path = os.path.realpath(link)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise SlotError("%s: cannot open the model directory %s: %s" % (link, path, e.strerror)) from e
        try:
            manifest, source = cls._read_manifest(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, manifest, bare=source != MANIFEST_PATH)

    @staticmethod
    def _read_manifest(fd, path):
        for name in (MANIFEST_PATH, "config.json"):
            try:
                with open(name, "rb", opener=lambda p, flags: os.open(p, flags, dir_fd=fd)) as f:
                    data = json.load(f)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as e:
                raise SlotError("%s/%s: %s" % (path, name, e)) from e
            if isinstance(data, dict) and isinstance(data.get("version"), str) and data["version"]:
                return data, name
        raise SlotError("%s: no version: neither %s nor config.json names one; "
                        "install it with modelslot, or add \"version\" to config.json" % (path, MANIFEST_PATH))

    def open(self, relpath, mode="rb"):
        """Open a file of this slot, relative to the directory resolved, even
        after the link moved on."""
        if os.path.isabs(relpath):
            raise ValueError("%s: a slot's files are named relative to it" % relpath)
        return open(relpath, mode, opener=lambda p, flags: os.open(p, flags, dir_fd=self._fd))

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __repr__(self):
        return "Slot(%r, version=%r)" % (self.path, self.version)


# --- loading and reloading ------------------------------------------------

class Loaded:
    """A loaded model and the slot it came from."""

    def __init__(self, model, slot):
        self.model = model
        self.slot = slot


class Holder:
    """Holds the model served now and replaces it on reload.

    load(slot) builds the server's model from a Slot (reading its files via
    slot.open or under slot.path) and returns it; it may raise to refuse the
    slot. close(model), if given, is called on a model that was replaced.
    """

    def __init__(self, link, load, close=None):
        self.link = link
        self._load = load
        self._close = close
        self._lock = threading.Lock()  # one load at a time
        self._current = None
        self._hup = threading.Event()
        self._thread = None
        self.last_error = None

    def start(self):
        """The first load; then READY=1. Raises if it fails: with nothing to
        serve, the server should exit and let systemd (and modelslot) see it."""
        loaded = self._load_slot()
        self._current = loaded
        ready("serving %s" % loaded.slot.version)
        return loaded

    def current(self):
        """The model to answer a request with: take it once per request, so
        one answer never mixes two versions."""
        return self._current

    def reload(self):
        """Resolve the link once more and swap the new model in. A slot that
        fails to load is not swapped in: the old model keeps serving, the
        error is kept in last_error and in systemd's STATUS=. Returns True
        when a new model serves."""
        with self._lock:
            reloading("reloading from %s" % self.link)
            try:
                loaded = self._load_slot()
            except Exception as e:  # the server's load may fail in any way
                self.last_error = e
                old = self._current.slot.version if self._current else "nothing"
                ready("reload failed, still serving %s: %s" % (old, e))
                return False
            old, self._current = self._current, loaded
            self.last_error = None
            ready("serving %s" % loaded.slot.version)
        if old is not None:
            if self._close:
                self._close(old.model)
            old.slot.close()
        return True

    def _load_slot(self):
        slot = Slot.resolve(self.link)
        try:
            return Loaded(self._load(slot), slot)
        except BaseException:
            slot.close()
            raise

    def reload_on_sighup(self):
        """Reload on SIGHUP (ExecReload=/bin/kill -HUP $MAINPID). The signal
        handler only sets a flag; a background thread does the load, so
        requests go on being answered by the old model meanwhile. Call it
        from the main thread."""
        signal.signal(signal.SIGHUP, lambda signum, frame: self._hup.set())
        self._thread = threading.Thread(target=self._reloader, name="modelslot-reload", daemon=True)
        self._thread.start()

    def _reloader(self):
        while True:
            self._hup.wait()
            self._hup.clear()
            self.reload()

    def run_watchdog(self, alive=None, stop=None):
        """Send WATCHDOG=1 every half WatchdogSec= while alive() (if given)
        returns True, until stop (a threading.Event) is set. Returns at once
        when no watchdog is configured. Run it in a thread."""
        interval = watchdog_interval()
        if interval is None:
            return
        stop = stop or threading.Event()
        while not stop.wait(interval / 2):
            if alive is None or alive():
                watchdog()
