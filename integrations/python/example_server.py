"""An example inference server built on modelslot_serve, standard library only.

The "model" is a linear map in model.json ({"weights": [[...], ...]}), so the
example runs anywhere; a real server loads its framework's files in load()
the same way. It speaks the probe format of modelslot's demo server:

  POST /v1/infer  {"inputs": [[x1, ..., xn], ...]}
               -> {"outputs": [[y1, ..., ym], ...], "version": "v2", "model": "demo"}
  GET  /healthz   {"status": "ok", "version": "v2"}

Under systemd: Type=notify, socket activation (a .socket unit), ExecReload=
/bin/kill -HUP $MAINPID, WatchdogSec=. By hand: --addr 127.0.0.1:9000.

  python3 example_server.py --link /var/lib/modelslot/demo/current
"""

import argparse
import http.server
import json
import signal
import socket
import sys
import threading

import modelslot_serve as ms


class LinearModel:
    def __init__(self, weights):
        self.weights = weights

    def __call__(self, inputs):
        width = len(self.weights[0])
        if not isinstance(inputs, list) or any(not isinstance(r, list) or len(r) != width for r in inputs):
            raise ValueError("inputs must be rows of %d numbers" % width)
        return [[round(sum(w * x for w, x in zip(row, r)), 6) for row in self.weights] for r in inputs]


def load(slot):
    """Build the model from a slot; raise to refuse it (the old one serves on)."""
    with slot.open("model.json") as f:
        weights = json.load(f)["weights"]
    if not weights or not all(isinstance(row, list) and len(row) == len(weights[0]) and
                              all(isinstance(w, (int, float)) for w in row) for row in weights):
        raise ValueError("%s/model.json: weights must be rows of numbers of one width" % slot.path)
    return LinearModel(weights)


def handler(holder):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/v1/infer":
                return self.answer(404, {"error": "POST /v1/infer"})
            cur = holder.current()  # one model for the whole request
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                out = cur.model(body["inputs"])
            except (ValueError, KeyError, TypeError) as e:
                return self.answer(400, {"error": str(e)})
            self.answer(200, {"outputs": out, "version": cur.slot.version, "model": cur.slot.model})

        def do_GET(self):
            if self.path != "/healthz":
                return self.answer(404, {"error": "GET /healthz"})
            cur = holder.current()
            self.answer(200, {"status": "ok", "version": cur.slot.version, "slot": cur.slot.path})

        def log_message(self, fmt, *args):  # the journal needs no line per request
            pass

    return Handler


def serve(args, load=load, name="example_server"):
    """Serve the model load(slot) builds; torch_server.py passes its own."""
    holder = ms.Holder(args.link, load)
    try:
        holder.start()
    except Exception as e:  # a framework's loader may fail in any way: nothing to serve, exit
        print("%s: %s" % (name, e), file=sys.stderr)
        return 1
    holder.reload_on_sighup()
    socks = ms.listen_sockets()
    if not socks and not args.addr:
        print("%s: no socket passed by systemd; give --addr HOST:PORT" % name, file=sys.stderr)
        return 2
    srv = http.server.ThreadingHTTPServer(("", 0), handler(holder), bind_and_activate=False)
    srv.daemon_threads = True
    if socks:
        srv.socket.close()
        srv.socket = socks[0]
    else:
        host, _, port = args.addr.rpartition(":")
        srv.socket = socket.create_server((host, int(port)))
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()
        threading.Thread(target=srv.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    threading.Thread(target=holder.run_watchdog, kwargs={"stop": stop}, daemon=True).start()
    srv.serve_forever()
    ms.stopping()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="An example inference server that modelslot updates.")
    p.add_argument("--link", required=True, help="the model link, e.g. /var/lib/modelslot/demo/current")
    p.add_argument("--addr", default="", help="HOST:PORT when systemd passes no socket")
    return serve(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
