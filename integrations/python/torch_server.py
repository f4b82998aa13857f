"""An example PyTorch inference server built on modelslot_serve.

It serves a TorchScript module, the slot's model.pt (torch.jit.save of a
scripted or traced module), over the HTTP of example_server.py:

  POST /v1/infer  {"inputs": [[x1, ..., xn], ...]}
               -> {"outputs": [[y1, ..., ym], ...], "version": "v2", "model": "demo"}
  GET  /healthz   {"status": "ok", "version": "v2"}

The answer names the slot's version, so modelslot's default probe_version
("json:/version") tells the new version from the old, with activation
"restart" or "reload" (SIGHUP: the new model.pt is loaded in the background
while the old one answers, and a model.pt that does not load leaves the old
one serving). Debian's python3-torch (1.13) is enough:

  apt-get install python3-torch
  /usr/bin/python3 torch_server.py --link /var/lib/modelslot/demo/current

The unit is example-inference.service with this script in ExecStart=.
"""

import argparse
import sys

import torch

import example_server


class TorchModel:
    """A TorchScript module answering rows of numbers, on the CPU."""

    def __init__(self, module):
        self.module = module

    def __call__(self, inputs):
        try:
            x = torch.tensor(inputs, dtype=torch.float32)
            with torch.no_grad():
                return self.module(x).tolist()
        except (RuntimeError, TypeError) as e:  # a shape or type the module refuses
            raise ValueError(str(e)) from e


def load(slot):
    """torch.jit.load the slot's model.pt; it raises on a corrupt file, so
    the first start exits (the unit fails) and a reload keeps the old model."""
    with slot.open("model.pt") as f:
        module = torch.jit.load(f, map_location="cpu")
    module.eval()
    return TorchModel(module)


def main(argv=None):
    p = argparse.ArgumentParser(description="A PyTorch (TorchScript) inference server that modelslot updates.")
    p.add_argument("--link", required=True, help="the model link, e.g. /var/lib/modelslot/demo/current")
    p.add_argument("--addr", default="", help="HOST:PORT when systemd passes no socket")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return example_server.serve(args, load, name="torch_server")


if __name__ == "__main__":
    sys.exit(main())
