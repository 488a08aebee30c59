"""Clips per second for each detector family on this machine, through the whole inference path:
2 s of audio at 2 kHz -> features (numpy) -> model (ONNX Runtime), 256 clips per batch.

Speed does not depend on the weights, so each family is exported untrained with its default input
(compact CNN and the bundled detector: 129 x 126 spectrogram; Xception: 128 x 128 resized image, width
0.25 and 1.0; Inception 1D and InceptionTime: 30 x 126 complexity-entropy series). Ratios are against
the compact CNN, measured in the same process; the feature share of the time is printed too.

    .venv/bin/python benchmarks/bench_detectors.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def clips_per_second(bundle_dir: Path, n: int = 256, repeats: int = 5) -> tuple[float, float]:
    """(clips per second end to end, share of the time spent on features)."""
    from deepdive.bundle import Bundle

    b = Bundle.load(bundle_dir)
    f = b.features
    rng = np.random.default_rng(0)
    clips = rng.standard_normal((n, f.window_samples)).astype(np.float32) * 0.05
    b.detect(np.stack([f.compute(c, f.sr) for c in clips[:8]]))  # warm-up
    best, feat_share = float("inf"), 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        feats = np.stack([f.compute(c, f.sr) for c in clips])
        t1 = time.perf_counter()
        b.detect(feats, batch_size=n)
        t2 = time.perf_counter()
        if t2 - t0 < best:
            best, feat_share = t2 - t0, (t1 - t0) / (t2 - t0)
    return n / best, feat_share


def _export(name: str, feats, options: dict, out: Path) -> Path:
    from deepdive.models import build
    from deepdive.train import export_onnx

    out.mkdir(parents=True, exist_ok=True)
    model = build(name, 2, feats.shape, **options)
    export_onnx(model, feats.shape, out / "model.onnx", "features")
    card = {"task": "detection", "labels": [{"label": "noise"}, {"label": "right whale"}], "positive_label": "right whale",
            "features": feats.to_dict(), "prepare": {"min_last_s": 1.0, "pad": "mirror"}}
    (out / "card.json").write_text(json.dumps(card))
    return out


def main() -> int:
    from deepdive.bundle import bundled_path
    from deepdive.features import OrdinalConfig, StftImageConfig

    families = [
        ("detector-cnn (compact CNN)", "detector-cnn", StftImageConfig(), {}),
        ("xception, width 0.25", "xception", StftImageConfig(image=(128, 128)), {"width": 0.25}),
        ("xception, width 1.0", "xception", StftImageConfig(image=(128, 128)), {"width": 1.0}),
        ("inception1d", "inception1d", OrdinalConfig(), {}),
        ("inceptiontime", "inceptiontime", OrdinalConfig(), {}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, feats, options in families:
            rate, share = clips_per_second(_export(name, feats, options, Path(tmp) / label.replace(" ", "_")))
            rows.append((label, rate, share))
        bundled = bundled_path("detector")
        if (bundled / "model.onnx").is_file():
            rate, share = clips_per_second(bundled)
            rows.append(("bundled detector", rate, share))
    ref = rows[0][1]
    print("| model | clips/s | audio seconds per second | share in features | vs compact CNN |")
    print("|---|---:|---:|---:|---:|")
    for label, rate, share in rows:
        print(f"| {label} | {rate:,.0f} | {rate * 2:,.0f} | {share:.0%} | {rate / ref:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
