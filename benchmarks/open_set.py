"""'None of these': does the species model say so for recordings of no species it knows?

Known: the test split of the bundled species model (or `--model DIR`), the card's own split of the
species it knows (encounters, tapes or blocks it never trained on). Others, scored whole:
- the species of ../shared/data/watkins the model does not know (the folder grew after it was
  trained: for a 16-species bundle, five dolphins; a model that knows every species there has none);
- noise clips of the challenge's buoys (../shared/data/rightwhalecalls, label 0; `--buoy-clips`, 300);
- synthetic noise at 8 to 96 kHz: white, brown, ship-like (two hull tones over broadband noise) and
  near-silence (white noise at 1e-5 full scale).

Printed: novelty AUROC (known against each kind of other, and all), and at the card's threshold the
share of known recordings flagged (aim: at most 10%) and of others flagged (aim: at least 80%), per
kind and per species; beside it the softmax's top probability as a baseline score (1 - max p).

    .venv/bin/python benchmarks/open_set.py [--model DIR] [--buoy-clips 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def noises(rng: np.random.Generator, n: int = 20):
    """(kind, name, samples, sr) of synthetic noise recordings, 2 to 10 s."""
    for _ in range(n):
        sr = int(rng.choice([8000, 16000, 32000, 48000, 96000]))
        k = int(sr * rng.uniform(2, 10))
        t = np.arange(k) / sr
        yield "white", 0.1 * rng.standard_normal(k), sr
        brown = np.cumsum(rng.standard_normal(k))
        brown -= np.convolve(brown, np.ones(200) / 200, "same")
        yield "brown", 0.3 * brown / np.abs(brown).max(), sr
        ship = (0.3 * np.sin(2 * np.pi * rng.uniform(40, 120) * t) + 0.2 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
                + 0.05 * rng.standard_normal(k))
        yield "ship-like", ship, sr
        yield "near-silence", 1e-5 * rng.standard_normal(k), sr


def main() -> int:
    from deepdive.bundle import resolve
    from deepdive.datasets import load_datasets
    from deepdive.evaluate import roc_auc
    from deepdive.predict import classify
    from deepdive.prepare import split_by_encounter

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--buoy-clips", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bundle = resolve(args.model, "species")
    if bundle.novelty is None:
        print(f"{bundle.path}: no novelty fit (train it with a validation split)", file=sys.stderr)
        return 1
    threshold = bundle.novelty.threshold
    rng = np.random.default_rng(args.seed)
    recs = load_datasets("watkins", [str(SHARED / "watkins")])
    known = set(bundle.labels)
    mine = [r for r in recs if r.label in known]
    prep = bundle.card["prepare"]
    assign, _ = split_by_encounter(mine, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    rows = []  # (kind, name, novelty, 1 - top probability)

    def score(kind, name, source, sr=None):
        r = classify(source, sr=sr, model=bundle)
        rows.append((kind, name, r.novelty, 1.0 - r[0]["probability"]))

    for r in mine:
        if assign[r.key] == "test":
            score("known", r.label, r.path)
    for r in recs:
        if r.label not in known:
            score("unknown species", r.label, r.path)
    buoys = SHARED / "rightwhalecalls"
    if (buoys / "train.csv").is_file():
        noise = [x["clip_name"] for x in csv.DictReader(open(buoys / "train.csv")) if x["label"] == "0"]
        for clip in rng.choice(noise, min(args.buoy_clips, len(noise)), replace=False):
            score("buoy noise", "buoy noise", buoys / "train" / clip)
    for name, y, sr in noises(rng):
        score("synthetic noise", name, y.astype(np.float32), sr)

    nov = np.array([r[2] for r in rows])
    msp = np.array([r[3] for r in rows])
    is_known = np.array([r[0] == "known" for r in rows])
    kinds = [k for k in dict.fromkeys(r[0] for r in rows) if k != "known"]
    print(f"`{bundle.path.name}`: {is_known.sum()} known test recordings; novelty threshold {threshold:g} (card)\n")
    print("| others | recordings | novelty AUROC | 1 - top probability AUROC | flagged at the threshold |")
    print("|---|---:|---:|---:|---:|")
    for k in [*kinds, "all others"]:
        mask = ~is_known if k == "all others" else np.array([r[0] == k for r in rows])
        y = np.r_[np.zeros(is_known.sum()), np.ones(mask.sum())]
        print(f"| {k} | {mask.sum()} | {roc_auc(y, np.r_[nov[is_known], nov[mask]]):.3f} | "
              f"{roc_auc(y, np.r_[msp[is_known], msp[mask]]):.3f} | {(nov[mask] > threshold).mean():.2f} |")
    print(f"\nKnown test recordings flagged (none of these): {(nov[is_known] > threshold).mean():.2f}\n")
    print("| kind | name | recordings | flagged | median novelty |")
    print("|---|---|---:|---:|---:|")
    for kind, name in dict.fromkeys((r[0], r[1]) for r in rows):
        v = np.array([r[2] for r in rows if (r[0], r[1]) == (kind, name)])
        print(f"| {kind} | {name} | {len(v)} | {(v > threshold).mean():.2f} | {np.median(v):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
