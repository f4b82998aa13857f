"""A test inference server that names no version in its answers, as most
servers (Triton, TF Serving, llama.cpp) do not: modelslot can only tell its new
process from the old by the unit's main PID (probe_version = "off").

It resolves the link once at start and reads model.json ({"scale": k});
POST {"inputs": [x, ...]} -> {"outputs": [k*x, ...]}. SIGHUP is ignored: a
reload leaves the old process answering with the old model. Standard library
only; READY=1 to $NOTIFY_SOCKET once it listens.

  python3 noversion_server.py --link LINK --port PORT
"""

import argparse
import http.server
import json
import os
import signal
import socket


def notify(state):
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path[0] == "@":
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(state.encode())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--link", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    with open(os.path.join(os.path.realpath(args.link), "model.json")) as f:
        scale = json.load(f)["scale"]
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            data = json.dumps({"outputs": [scale * x for x in body["inputs"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
    notify("READY=1")
    srv.serve_forever()


if __name__ == "__main__":
    main()
