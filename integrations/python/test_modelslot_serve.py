"""Tests of modelslot_serve against real sockets, real files and real signals.

Run: python3 -m unittest discover -s integrations/python (go test
./integrations/python runs them too).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

import modelslot_serve as ms

HERE = os.path.dirname(os.path.abspath(__file__))


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, test, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "modelslot-test-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            d = tempfile.mkdtemp()
            test.addCleanup(os.rmdir, d)
            self.env = os.path.join(d, "notify")
            self.sock.bind(self.env)
            test.addCleanup(os.unlink, self.env)
        test.addCleanup(self.sock.close)
        self.sock.settimeout(5)

    def recv(self):
        return self.sock.recv(4096).decode().split("\n")


class NotifyTest(unittest.TestCase):
    def test_without_notify_socket_nothing_is_sent(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertFalse(ms.ready("x"))
            self.assertFalse(ms.watchdog())

    def test_ready_and_status_reach_the_socket(self):
        ns = NotifySocket(self)
        with mock.patch.dict(os.environ, {"NOTIFY_SOCKET": ns.env}):
            self.assertTrue(ms.ready("serving v2"))
            self.assertEqual(ns.recv(), ["READY=1", "STATUS=serving v2"])
            self.assertTrue(ms.watchdog())
            self.assertEqual(ns.recv(), ["WATCHDOG=1"])

    def test_reloading_carries_monotonic_usec(self):
        ns = NotifySocket(self, abstract=True)
        with mock.patch.dict(os.environ, {"NOTIFY_SOCKET": ns.env}):
            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            ms.reloading()
            got = ns.recv()
        self.assertEqual(got[0], "RELOADING=1")
        self.assertTrue(got[1].startswith("MONOTONIC_USEC="), got)
        self.assertGreaterEqual(int(got[1].split("=")[1]), before)

    def test_a_socket_that_is_gone_is_an_error(self):
        with mock.patch.dict(os.environ, {"NOTIFY_SOCKET": "/nonexistent/notify"}):
            with self.assertRaises(OSError):
                ms.ready()

    def test_watchdog_interval(self):
        cases = [
            ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
            ({"WATCHDOG_USEC": "500000"}, 0.5),
            ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
            ({"WATCHDOG_USEC": "0"}, None),
            ({}, None),
        ]
        for env, want in cases:
            with self.subTest(env=env), mock.patch.dict(os.environ, env, clear=True):
                self.assertEqual(ms.watchdog_interval(), want)


def socket_activated(argv, sock, **kw):
    """Start argv as systemd starts a socket-activated service: sock as fd 3
    (sh moves it there: Popen closes fd 3 after a preexec_fn ran), and
    LISTEN_PID the pid that runs argv (sh execs it, keeping its pid)."""
    fd = sock.fileno()
    move = "" if fd == 3 else " 3<&%d %d<&-" % (fd, fd)
    script = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"' + move
    return subprocess.Popen(["sh", "-c", script] + list(argv), pass_fds=(fd,), **kw)


class ListenSocketsTest(unittest.TestCase):
    def test_none_passed(self):
        with mock.patch.dict(os.environ, {"LISTEN_PID": "1", "LISTEN_FDS": "1"}):
            self.assertEqual(ms.listen_sockets(), [])
            self.assertNotIn("LISTEN_FDS", os.environ)

    def test_passed_socket_serves_in_a_child_process(self):
        # As systemd passes it: the listening socket as fd 3, LISTEN_PID the
        # pid of the process that runs (sh execs python, keeping its pid).
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        self.addCleanup(srv.close)
        child = ("import sys; sys.path.insert(0, %r); import modelslot_serve as ms, os\n"
                 "socks = ms.listen_sockets()\n"
                 "assert 'LISTEN_FDS' not in os.environ\n"
                 "c, _ = socks[0].accept(); c.sendall(b'%%d sockets' %% len(socks)); c.close()\n") % HERE
        proc = socket_activated([sys.executable, "-c", child], srv)
        self.addCleanup(proc.kill)
        with socket.create_connection(srv.getsockname(), timeout=10) as c:
            c.settimeout(10)
            self.assertEqual(c.recv(100), b"1 sockets")
        self.assertEqual(proc.wait(10), 0)


def make_slot(root, name, version, manifest=True, files=None):
    """A slot as modelslot leaves it: files and .modelslot/manifest.json."""
    d = os.path.join(root, "slots", name)
    os.makedirs(os.path.join(d, ".modelslot"), exist_ok=True)
    for rel, data in (files or {"weights.bin": version.encode()}).items():
        with open(os.path.join(d, rel), "wb") as f:
            f.write(data)
    if manifest:
        with open(os.path.join(d, ms.MANIFEST_PATH), "w") as f:
            json.dump({"schema": 1, "model": "demo", "version": version, "sequence": 1, "files": []}, f)
    return d


def swap(root, name):
    """Point root/current at slots/name the way modelslot does: rename(2)."""
    tmp = os.path.join(root, ".current.tmp")
    os.symlink(os.path.join("slots", name), tmp)
    os.rename(tmp, os.path.join(root, "current"))


class SlotTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(subprocess.run, ["rm", "-rf", self.root])
        self.link = os.path.join(self.root, "current")

    def test_version_from_the_manifest(self):
        make_slot(self.root, "a", "v1")
        swap(self.root, "a")
        s = ms.Slot.resolve(self.link)
        self.addCleanup(s.close)
        self.assertEqual((s.version, s.model, s.bare), ("v1", "demo", False))
        self.assertEqual(s.path, os.path.join(os.path.realpath(self.root), "slots", "a"))

    def test_a_resolved_slot_keeps_reading_its_version_after_a_swap(self):
        make_slot(self.root, "a", "v1")
        make_slot(self.root, "b", "v2")
        swap(self.root, "a")
        s = ms.Slot.resolve(self.link)
        self.addCleanup(s.close)
        swap(self.root, "b")
        os.rename(os.path.join(self.root, "slots", "a"), os.path.join(self.root, "slots", ".a.trash"))
        with s.open("weights.bin") as f:
            self.assertEqual(f.read(), b"v1")
        with self.assertRaises(ValueError):
            s.open("/etc/passwd")

    def test_bare_directory_takes_the_version_from_config_json(self):
        d = make_slot(self.root, "dev", "x", manifest=False,
                      files={"config.json": b'{"version": "dev-3", "arch": "mlp"}'})
        s = ms.Slot.resolve(d)
        self.addCleanup(s.close)
        self.assertEqual((s.version, s.bare), ("dev-3", True))

    def test_no_version_is_refused_with_what_to_do(self):
        d = make_slot(self.root, "dev", "x", manifest=False, files={"config.json": b'{"arch": "mlp"}'})
        with self.assertRaisesRegex(ms.SlotError, "add \"version\" to config.json"):
            ms.Slot.resolve(d)
        with self.assertRaisesRegex(ms.SlotError, "cannot open the model directory"):
            ms.Slot.resolve(os.path.join(self.root, "missing"))


class HolderTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(subprocess.run, ["rm", "-rf", self.root])
        self.link = os.path.join(self.root, "current")
        make_slot(self.root, "a", "v1")
        swap(self.root, "a")
        self.ns = NotifySocket(self)
        patcher = mock.patch.dict(os.environ, {"NOTIFY_SOCKET": self.ns.env})
        patcher.start()
        self.addCleanup(patcher.stop)
        self.closed = []

    def load(self, slot):
        with slot.open("weights.bin") as f:
            data = f.read()
        if data == b"corrupt":
            raise ValueError("weights.bin is not a model")
        return data

    def holder(self):
        return ms.Holder(self.link, self.load, close=self.closed.append)

    def test_start_loads_and_says_ready(self):
        h = self.holder()
        h.start()
        self.assertEqual((h.current().model, h.current().slot.version), (b"v1", "v1"))
        self.assertEqual(self.ns.recv(), ["READY=1", "STATUS=serving v1"])

    def test_sighup_reloads_the_swapped_slot_in_the_background(self):
        h = self.holder()
        h.start()
        self.ns.recv()
        old = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, old)
        h.reload_on_sighup()
        make_slot(self.root, "b", "v2")
        swap(self.root, "b")
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(self.ns.recv()[0], "RELOADING=1")
        self.assertEqual(self.ns.recv(), ["READY=1", "STATUS=serving v2"])
        self.assertEqual(h.current().slot.version, "v2")
        # The old model is released after READY=1 (requests in flight finish
        # on it first): wait for that, with a bound.
        deadline = time.monotonic() + 5
        while not self.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.closed, [b"v1"])

    def test_a_slot_that_fails_to_load_leaves_the_old_model_serving(self):
        h = self.holder()
        h.start()
        self.ns.recv()
        make_slot(self.root, "b", "v3", files={"weights.bin": b"corrupt"})
        swap(self.root, "b")
        self.assertFalse(h.reload())
        self.assertEqual(self.ns.recv()[0], "RELOADING=1")
        got = self.ns.recv()
        self.assertEqual(got[0], "READY=1")
        self.assertIn("reload failed, still serving v1: weights.bin is not a model", got[1])
        self.assertEqual((h.current().model, h.current().slot.version), (b"v1", "v1"))
        self.assertIsInstance(h.last_error, ValueError)
        self.assertEqual(self.closed, [])

    def test_watchdog_is_fed_only_while_alive(self):
        h = self.holder()
        stop = threading.Event()
        alive = threading.Event()
        alive.set()
        env = {"WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
        with mock.patch.dict(os.environ, env):
            t = threading.Thread(target=h.run_watchdog, args=(alive.is_set, stop))
            t.start()
            self.assertEqual(self.ns.recv(), ["WATCHDOG=1"])
            alive.clear()
            time.sleep(0.5)  # a ping already past alive() may still arrive
            self.ns.sock.setblocking(False)
            try:
                while True:
                    self.ns.sock.recv(100)
            except BlockingIOError:
                pass
            time.sleep(0.2)  # four intervals of 50 ms: none may ping
            with self.assertRaises(BlockingIOError):
                self.ns.sock.recv(100)
            stop.set()
            t.join(5)
        self.assertFalse(t.is_alive())


if __name__ == "__main__":
    unittest.main()
