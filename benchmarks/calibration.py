"""Do the species model's probabilities mean what they say? Expected calibration error (ECE, 15 bins,
top class) of the bundled species model (or `--model DIR`) on the test split of its card (recordings
of encounters, tapes or blocks it never trained on), with the card's temperature and without it
(temperature 1), at window and recording level, and a reliability table: per confidence bin, how many
recordings, their mean confidence and how many were right.

    .venv/bin/python benchmarks/calibration.py [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    from deepdive.bundle import resolve, softmax
    from deepdive.datasets import load_datasets
    from deepdive.evaluate import expected_calibration_error
    from deepdive.predict import window_features
    from deepdive.prepare import split_by_encounter

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    bundle = resolve(args.model, "species")
    t = bundle.temperature
    recs = load_datasets("watkins", [str(SHARED / "watkins")])
    index = {lab: i for i, lab in enumerate(bundle.labels)}
    mine = [r for r in recs if r.label in index]
    prep = bundle.card["prepare"]
    assign, _ = split_by_encounter(mine, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    logits, rec_of, y = [], [], []
    test = [r for r in mine if assign[r.key] == "test"]
    for k, r in enumerate(test):
        z = np.concatenate([bundle.logits(f) for _, f in window_features(r.path, bundle)])
        logits.append(z)
        rec_of += [k] * len(z)
        y.append(index[r.label])
    z, rec_of, y = np.concatenate(logits), np.array(rec_of), np.array(y)
    print(f"`{bundle.path.name}` on its test split: {len(test)} recordings, {len(z)} windows; card temperature {t:g}\n")
    print("| temperature | window ECE | recording ECE | recording top-1 | mean top confidence |")
    print("|---|---:|---:|---:|---:|")
    for name, temp in (("1 (none)", 1.0), (f"{t:g} (the card's)", t)):
        p = softmax(z / temp)
        rec = np.stack([p[rec_of == k].mean(0) for k in range(len(test))])
        print(f"| {name} | {expected_calibration_error(y[rec_of], p):.3f} | {expected_calibration_error(y, rec):.3f} | "
              f"{(rec.argmax(1) == y).mean():.3f} | {rec.max(1).mean():.3f} |")
    p = softmax(z / t)
    rec = np.stack([p[rec_of == k].mean(0) for k in range(len(test))])
    conf, right = rec.max(1), rec.argmax(1) == y
    print("\nReliability at recording level, the card's temperature:\n")
    print("| top probability | recordings | mean confidence | right |")
    print("|---|---:|---:|---:|")
    for lo in np.arange(0.0, 1.0, 0.2):
        mask = (conf > lo) & (conf <= lo + 0.2)
        if mask.any():
            print(f"| {lo:.1f}-{lo + 0.2:.1f} | {mask.sum()} | {conf[mask].mean():.2f} | {right[mask].mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
