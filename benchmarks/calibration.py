"""Do the species model's probabilities mean what they say? Expected calibration error (ECE, 15 bins,
top class) of the bundled species model (or `--model DIR`) on the test split of its card (recordings
of encounters, tapes or blocks it never trained on), with the card's temperature and without it
(temperature 1), at window and recording level, and a reliability table: per confidence bin, how many
recordings, their mean confidence and how many were right.

    .venv/bin/python benchmarks/calibration.py [--model DIR]

Out of fold (`--crossval WORK`: a cross-validation's work folder, e.g. runs/leave-gear-out/work-...-encounters,
its foldI.json files): would a temperature fitted on cross-validation folds correct the probabilities on
encounters never heard? Each fold's window probabilities (already with that fold's own temperature)
are scaled by a second temperature fitted on the other folds (softmax(log p / T) is exactly the
fold model's softmax(logits / (T_fold T))), by windows' NLL as `deepdive train` does, or by
recordings' NLL; printed: recording ECE before and after, per fold and pooled, and the reliability.

    .venv/bin/python benchmarks/calibration.py --crossval WORK
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
    ap.add_argument("--crossval", default=None, help="a cross-validation work folder: calibration out of fold")
    args = ap.parse_args()
    if args.crossval:
        return out_of_fold(Path(args.crossval))
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


def _recording_probs(folds, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Recording probabilities (mean of the windows' softmax(log p / t)) and truths of (log p, y) pairs."""
    from deepdive.bundle import softmax

    return np.array([softmax(lp / t).mean(0) for lp, _ in folds]), np.array([y for _, y in folds])


def _fit(recs, level: str) -> float:
    from scipy.optimize import minimize_scalar

    from deepdive.calibration import fit_temperature

    if level == "windows":
        return fit_temperature(np.concatenate([lp for lp, _ in recs]), np.concatenate([[y] * len(lp) for lp, y in recs]))

    def nll(log_t):
        p, y = _recording_probs(recs, float(np.exp(log_t)))
        return -float(np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def out_of_fold(work: Path) -> int:
    import json

    from deepdive.evaluate import expected_calibration_error as ece

    folds = []
    for path in sorted(work.glob("fold*.json"), key=lambda p: int(p.stem[4:])):
        done = json.loads(path.read_text())
        # labels a fold's model did not know have probability 0: log 0 clipped, they stay at ~0
        folds.append([(np.log(np.clip(np.array(ws, dtype=np.float64), 1e-12, 1.0)), done["truth"][key])
                      for key, ws in done["groups"].items()])
    if len(folds) < 2:
        print(f"{work}: fewer than two finished folds")
        return 1
    print(f"`{work.name}`: {sum(map(len, folds))} recordings in {len(folds)} folds, each scored by a model that never "
          "heard it, with its fold's temperature (before) and a second one fitted on the other folds (after)\n")
    print("| second temperature fitted on the other folds' | temperatures (per held-out fold) | recording ECE before | "
          "after | per fold before | after |")
    print("|---|---|---:|---:|---|---|")
    reliability = {}
    for level in ("windows", "recordings"):
        temps, before, after, pooled0, pooled1 = [], [], [], [], []
        for i, held in enumerate(folds):
            t = _fit([r for j, f in enumerate(folds) if j != i for r in f], level)
            p0, y = _recording_probs(held, 1.0)
            p1, _ = _recording_probs(held, t)
            temps.append(t)
            before.append(ece(y, p0))
            after.append(ece(y, p1))
            pooled0.append((p0, y))
            pooled1.append((p1, y))
        p0, y = np.concatenate([p for p, _ in pooled0]), np.concatenate([y for _, y in pooled0])
        p1 = np.concatenate([p for p, _ in pooled1])
        reliability["none"], reliability[f"fitted on {level}"] = p0, p1
        print(f"| {level} | {', '.join(f'{t:.2f}' for t in temps)} | {ece(y, p0):.3f} | {ece(y, p1):.3f} | "
              f"{', '.join(f'{e:.2f}' for e in before)} | {', '.join(f'{e:.2f}' for e in after)} |")
    print("\nReliability at recording level, pooled out of fold:\n")
    print("| second temperature | " + " | ".join(f"{lo:.1f}-{lo + 0.2:.1f}: recordings, right" for lo in np.arange(0, 1, 0.2)) + " |")
    print("|---|" + "---:|" * 5)
    for name, p in reliability.items():
        conf, right = p.max(1), p.argmax(1) == y
        cells = []
        for lo in np.arange(0.0, 1.0, 0.2):
            mask = (conf > lo) & (conf <= lo + 0.2)
            cells.append(f"{mask.sum()}, {right[mask].mean():.2f}" if mask.any() else "0")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
