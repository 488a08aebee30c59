"""Throughput of the bundled species model: ONNX Runtime vs torch eager, same process, same batches.

Torch runs the same architecture (weights from runs/species-model/model.pt when present; throughput
does not depend on the weights' values).

    .venv/bin/python benchmarks/bench_onnx_vs_torch.py
"""

import time
from pathlib import Path

import numpy as np
import torch

from deepdive.bundle import resolve
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
    model = build(bundle.card["model"], len(bundle.labels), shape).eval()
    weights = Path("runs/species-model/model.pt")
    if weights.is_file():
        model.load_state_dict(torch.load(weights))
    torch.set_num_threads(2)
    for batch in (1, 32):
        x = (np.random.default_rng(0).standard_normal((batch, *shape)) * 20 - 40).astype(np.float32)
        r_onnx = rate(bundle.logits, x)
        with torch.inference_mode():
            r_torch = rate(lambda a: model(torch.from_numpy(a)).numpy(), x)
        print(f"batch {batch:2d}: onnxruntime {r_onnx:8.1f} windows/s, torch eager {r_torch:8.1f} windows/s, "
              f"ratio {r_onnx / r_torch:4.2f}x  ({r_onnx * bundle.features.window_s:,.0f} s of audio per second)")


if __name__ == "__main__":
    main()
