"""The example server as systemd runs it: a real process given its listening
socket (fd 3, $LISTEN_FDS) and $NOTIFY_SOCKET, reloaded by SIGHUP while
requests keep coming, stopped by SIGTERM."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

from test_modelslot_serve import HERE, NotifySocket, make_slot, socket_activated, swap


def weights(k):
    return json.dumps({"weights": [[k, 0], [0, k]]}).encode()


class ExampleServerTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(subprocess.run, ["rm", "-rf", self.root])
        make_slot(self.root, "a", "v1", files={"model.json": weights(1)})
        swap(self.root, "a")
        self.ns = NotifySocket(self)
        self.ns.sock.settimeout(20)
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.addCleanup(self.srv.close)
        env = dict(os.environ, NOTIFY_SOCKET=self.ns.env, PYTHONDONTWRITEBYTECODE="1")
        self.proc = socket_activated(
            [sys.executable, os.path.join(HERE, "example_server.py"), "--link", os.path.join(self.root, "current")],
            self.srv, env=env, stderr=subprocess.PIPE)
        self.addCleanup(self.proc.stderr.close)
        self.addCleanup(self.proc.kill)

    def infer(self, rows):
        c = http.client.HTTPConnection(*self.srv.getsockname(), timeout=10)
        try:
            c.request("POST", "/v1/infer", json.dumps({"inputs": rows}), {"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def wait_ready(self):
        while True:
            states = self.ns.recv()
            if states[0] == "READY=1":
                return states

    def test_serves_reloads_without_a_failed_request_and_stops(self):
        self.assertEqual(self.wait_ready(), ["READY=1", "STATUS=serving v1"])
        self.assertEqual(self.infer([[1, 2]]), (200, {"outputs": [[1, 2]], "version": "v1", "model": "demo"}))

        failed, seen, stop = [], set(), threading.Event()

        def hammer():
            while not stop.is_set():
                try:
                    code, body = self.infer([[1, 2]])
                    want = {"v1": [[1, 2]], "v2": [[2, 4]]}.get(body.get("version"))
                    if code != 200 or body["outputs"] != want:
                        failed.append((code, body))
                    seen.add(body.get("version"))
                except OSError as e:
                    failed.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        make_slot(self.root, "b", "v2", files={"model.json": weights(2)})
        swap(self.root, "b")
        self.proc.send_signal(signal.SIGHUP)
        self.assertEqual(self.wait_ready(), ["READY=1", "STATUS=serving v2"])
        self.assertEqual(self.infer([[1, 2]])[1]["version"], "v2")
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(failed, [])
        self.assertIn("v1", seen)

        # A broken slot is refused; v2 goes on serving.
        make_slot(self.root, "c", "v3", files={"model.json": b'{"weights": [[1, "x"]]}'})
        swap(self.root, "c")
        self.proc.send_signal(signal.SIGHUP)
        states = self.wait_ready()
        self.assertIn("reload failed, still serving v2", states[1])
        self.assertEqual(self.infer([[1, 2]])[1]["version"], "v2")
        self.assertEqual(self.infer([[1]])[0], 400)

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(10), 0, self.proc.stderr.read())
        self.assertEqual(self.ns.recv(), ["STOPPING=1"])

    def test_a_first_slot_that_cannot_load_exits_1(self):
        make_slot(self.root, "a", "v1", files={"model.json": b"{}"})
        self.assertEqual(self.proc.wait(10), 1)
        self.assertIn(b"weights", self.proc.stderr.read())


if __name__ == "__main__":
    unittest.main()
