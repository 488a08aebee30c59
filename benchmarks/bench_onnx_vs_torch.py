"""Throughput of the bundled species model: ONNX Runtime (fp32 model.onnx and the 8-bit
model.int8.onnx) vs torch eager, same process, same batches.

Torch runs the same architecture, all members of an ensemble (weights from the bundle's model.pt
when present; throughput does not depend on the weights' values).

    .venv/bin/python benchmarks/bench_onnx_vs_torch.py
"""

import time

import numpy as np
import torch

from deepdive.bundle import Bundle, resolve
from deepdive.models import build


def rate(fn, x, seconds=4.0):
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(x)
        n += len(x)
    return n / (time.perf_counter() - t0)


def main():
    bundle = resolve(None, "species")
    shape = bundle.features.shape
    members = len(bundle.card.get("training", {}).get("members", [])) or 1
    model = build(bundle.card["model"], len(bundle.labels), shape)
    if members > 1:  # the bundle averages several networks: so does torch
        from deepdive.train import Ensemble

        model = Ensemble([build(bundle.card["model"], len(bundle.labels), shape) for _ in range(members)])
    model = model.eval()
    weights = bundle.path / "model.pt"  # the bundle ships its torch weights
    if weights.is_file():
        model.load_state_dict(torch.load(weights))
    torch.set_num_threads(2)
    fp32 = Bundle.load(bundle.path, precision="fp32")
    int8 = Bundle.load(bundle.path, precision="int8")
    for batch in (1, 32):
        x = (np.random.default_rng(0).standard_normal((batch, *shape)) * 20 - 40).astype(np.float32)
        with torch.inference_mode():
            r_torch = rate(lambda a: model(torch.from_numpy(a)).numpy(), x)
        print(f"batch {batch:2d}: torch eager {r_torch:8.1f} windows/s")
        for name, b in (("fp32", fp32), ("int8", int8)):
            r = rate(b.logits, x)
            print(f"          onnxruntime {name} ({b.model_file.name}) {r:8.1f} windows/s, {r / r_torch:4.2f}x torch "
                  f"({r * bundle.features.window_s:,.0f} s of audio per second)")


if __name__ == "__main__":
    main()
