"""Make the TorchScript models of the PyTorch example's tests.

  /usr/bin/python3 make_models.py OUT

writes three model directories under OUT, each as `modelslot install
--insecure --label V DIR` takes it:

  v1/, v2/      model.pt (a TorchScript module: a 4 -> 3 linear layer and a
                softmax, weights from a fixed seed per version), and its probe
                files: probe/input.json, probe/expected.json (the module's own
                output for that input), probe/tolerances.json
  v3-corrupt/   v2 with model.pt cut in half and its tail overwritten, so
                torch.jit.load refuses it; the probe files of v2

Nothing here is committed as a binary: the tests run this into a temp dir.
Needs Debian's python3-torch (1.13).
"""

import json
import os
import sys

import torch


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=-1)


INPUT = [[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, -0.5, 0.0]]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def make(out, name, seed):
    torch.manual_seed(seed)
    module = torch.jit.script(Classifier().eval())
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    module.save(os.path.join(d, "model.pt"))
    # The expected output is what the saved file computes, loaded back as the
    # server will load it.
    loaded = torch.jit.load(os.path.join(d, "model.pt"))
    with torch.no_grad():
        expected = loaded(torch.tensor(INPUT, dtype=torch.float32)).tolist()
    write_json(os.path.join(d, "probe", "input.json"), {"inputs": INPUT})
    write_json(os.path.join(d, "probe", "expected.json"), {"outputs": expected})
    # Probabilities: float32 through another BLAS may differ in the 7th digit.
    write_json(os.path.join(d, "probe", "tolerances.json"), {"/outputs": 1e-5})
    return d


def corrupt(src, dst):
    os.makedirs(dst, exist_ok=True)
    for rel in ("probe/input.json", "probe/expected.json", "probe/tolerances.json"):
        with open(os.path.join(src, rel), "rb") as f:
            data = f.read()
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        with open(os.path.join(dst, rel), "wb") as f:
            f.write(data)
    with open(os.path.join(src, "model.pt"), "rb") as f:
        data = f.read()
    half = len(data) // 2
    with open(os.path.join(dst, "model.pt"), "wb") as f:
        f.write(data[:half] + b"\x00not a zip archive\x00" * 8)
    try:
        torch.jit.load(os.path.join(dst, "model.pt"))
    except Exception:  # the point: torch refuses it
        return
    sys.exit("make_models.py: the corrupt model.pt still loads; the test would show nothing")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT")
    out = sys.argv[1]
    make(out, "v1", seed=1)
    v2 = make(out, "v2", seed=2)
    corrupt(v2, os.path.join(out, "v3-corrupt"))


if __name__ == "__main__":
    main()
