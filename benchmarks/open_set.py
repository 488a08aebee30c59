"""'None of these': does the species model say so for recordings of no species it knows?

Known: the test split of the bundled species model (or `--model DIR`), the card's own split of the
species it knows (encounters, tapes or blocks it never trained on). Others, scored whole:
- the species of ../shared/data/watkins the model does not know (the folder grew after it was
  trained: for a 16-species bundle, five dolphins; a model that knows every species there has none);
- noise clips of the challenge's buoys (../shared/data/rightwhalecalls, label 0; `--buoy-clips`, 300);
- synthetic noise at 8 to 96 kHz: white, brown, ship-like (two hull tones over broadband noise) and
  near-silence (white noise at 1e-5 full scale);
- new noise kinds, written after the bundle's "no sound event" gate was designed on the four above and
  reported apart: pink noise, a ship passing (its broadband noise rising and falling 15 dB over the
  recording, Doppler-shifted hull tones), rain (drops as short decaying bursts over white noise) and
  snapping shrimp (dense broadband clicks); 10 to 60 s.

Printed: novelty AUROC (known against each kind of other, and all), and at the card's threshold the
share of known recordings flagged (aim: at most 10%) and of others flagged (aim: at least 80%), per
kind and per species; beside it the softmax's top probability as a baseline score (1 - max p).

    .venv/bin/python benchmarks/open_set.py [--model DIR] [--buoy-clips 300] [--seed 0]

Leave species out (`--leave-out K`): for a model that knows every species of the folder there is no
unknown species left, so K models (`--train-model`, default deepdive-resnet-fast) are trained, each
without one of K groups of species dealt at random, with its own novelty fit and threshold; each is
scored on its known test recordings, its held-out species, a K-th of the buoy clips and the synthetic
noise, and the tables pool them. Models go to --out and are reused when there.

    .venv/bin/python benchmarks/open_set.py --leave-out 5 [--train-model deepdive-resnet-fast] [--threshold 0.984]

`--threshold T` flags above T instead of each card's threshold (the leave-out models' cards keep
train's default; the bundle's threshold was chosen out of fold, docs/species.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from _recipe import add_flags, trained_on_noise

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


def new_noises(rng: np.random.Generator, n: int = 10):
    """(kind, name, samples, sr) of noise kinds the gate was not designed on (see the module's text), 10 to 60 s."""
    from deepdive.synth import coloured_noise

    for _ in range(n):
        sr = int(rng.choice([16000, 32000, 48000]))
        k = int(sr * rng.uniform(10, 60))
        t = np.arange(k) / sr
        yield "pink", coloured_noise(k, sr, rng, -3.0), sr
        level = 10 ** (15 * np.exp(-(((t - t[-1] * rng.uniform(0.3, 0.7)) / (0.25 * t[-1])) ** 2)) / 20)
        f0, v = rng.uniform(40, 120), rng.uniform(3, 10)  # hull tone, ship speed m/s
        doppler = 1 + v / 1500 * np.tanh((t[-1] / 2 - t) / (0.2 * t[-1]))
        phase = 2 * np.pi * np.cumsum(f0 * doppler) / sr
        ship = level * (0.02 * coloured_noise(k, sr, rng, -6.0, 1.0) + 0.01 * np.sin(phase) + 0.005 * np.sin(2.5 * phase))
        yield "ship passing", 0.5 * ship / np.abs(ship).max(), sr
        rain = 0.02 * rng.standard_normal(k)
        for start in rng.integers(0, k - sr // 50, int(rng.uniform(20, 200) * k / sr)):
            m = sr // 50
            rain[start : start + m] += rng.uniform(0.05, 0.3) * rng.standard_normal(m) * np.exp(-np.arange(m) / (m / 5))
        yield "rain", rain, sr
        shrimp = 0.01 * rng.standard_normal(k)
        clicks = rng.integers(0, k - 8, int(rng.uniform(200, 2000) * k / sr))
        for j in range(8):  # each snap: a broadband click of a few samples
            np.add.at(shrimp, clicks + j, rng.uniform(0.1, 0.8, len(clicks)) * (0.6 ** j) * rng.choice([-1, 1], len(clicks)))
        yield "snapping shrimp", shrimp, sr


def species_groups(labels: list[str], k: int, seed: int) -> list[list[str]]:
    """The species dealt into k groups at random (seeded), each held out of one model's training."""
    order = [labels[i] for i in np.random.default_rng(seed).permutation(len(labels))]
    return [sorted(order[i::k]) for i in range(k)]


def report(rows: list[tuple]) -> None:
    """Print the tables. rows: (kind, name, novelty, 1 - top probability, flagged)."""
    from deepdive.evaluate import roc_auc

    nov = np.array([r[2] for r in rows])
    msp = np.array([r[3] for r in rows])
    flagged = np.array([r[4] for r in rows])
    is_known = np.array([r[0] == "known" for r in rows])
    kinds = [k for k in dict.fromkeys(r[0] for r in rows) if k != "known"]
    print("| others | recordings | novelty AUROC | 1 - top probability AUROC | flagged at the threshold |")
    print("|---|---:|---:|---:|---:|")
    for k in [*kinds, "all others"]:
        mask = ~is_known if k == "all others" else np.array([r[0] == k for r in rows])
        y = np.r_[np.zeros(is_known.sum()), np.ones(mask.sum())]
        print(f"| {k} | {mask.sum()} | {roc_auc(y, np.r_[nov[is_known], nov[mask]]):.3f} | "
              f"{roc_auc(y, np.r_[msp[is_known], msp[mask]]):.3f} | {flagged[mask].mean():.2f} |")
    print(f"\nKnown test recordings flagged (none of these): {flagged[is_known].mean():.2f}\n")
    print("| kind | name | recordings | flagged | median novelty |")
    print("|---|---|---:|---:|---:|")
    for kind, name in dict.fromkeys((r[0], r[1]) for r in rows):
        sel = [r for r in rows if (r[0], r[1]) == (kind, name)]
        print(f"| {kind} | {name} | {len(sel)} | {np.mean([r[4] for r in sel]):.2f} | {np.median([r[2] for r in sel]):.2f} |")


def under_gate(bundle, recs) -> None:
    """Print how many of the folder's cuts have no window above the bundle's "no sound event" gate
    (`novelty.salience`), per species, and on which split of the card they lie."""
    from collections import Counter

    from deepdive.novelty import salience
    from deepdive.predict import window_features
    from deepdive.prepare import split_by_encounter

    prep = bundle.card["prepare"]
    mine = [r for r in recs if r.label in set(bundle.labels)]
    assign, _ = split_by_encounter(mine, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    under = Counter()
    for r in recs:
        if max(float(salience(f).max()) for _, f in window_features(r.path, bundle)) < bundle.novelty.gate:
            under[(r.label, assign.get(r.key, "unknown species"))] += 1
    print(f"\nCuts of the folder with no window above the gate ({bundle.novelty.gate:.2f} dB): "
          f"{sum(under.values())} of {len(recs)}" + "".join(f"; {lab} ({split}): {n}" for (lab, split), n in sorted(under.items())))


def score_all(bundle, recs, unknown: set[str], rng, buoy_clips: int, threshold: float | None = None) -> list[tuple]:
    """Rows for one model: its known test recordings (the card's split), every recording of the
    species in `unknown`, buoy noise clips and synthetic noise; flagged above `threshold` (default:
    the card's)."""
    from deepdive.predict import classify
    from deepdive.prepare import split_by_encounter

    judge = bundle.novelty_judge  # the bundle itself, or the model that judges for it (a BirdNET head)
    threshold = judge.novelty.threshold if threshold is None else threshold
    known = set(bundle.labels)
    mine = [r for r in recs if r.label in known]
    prep = bundle.card["prepare"]
    assign, _ = split_by_encounter(mine, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    rows = []

    def score(kind, name, source, sr=None):
        r = classify(source, sr=sr, model=bundle)
        rows.append((kind, name, r.novelty, 1.0 - r[0]["probability"], r.novelty > threshold))

    for r in mine:
        if assign[r.key] == "test":
            score("known", r.label, r.path)
    for r in recs:
        if r.label in unknown:
            score("unknown species", r.label, r.path)
    buoys = SHARED / "rightwhalecalls"
    if (buoys / "train.csv").is_file():
        heard = trained_on_noise(bundle) | trained_on_noise(judge)
        noise = [x["clip_name"] for x in csv.DictReader(open(buoys / "train.csv"))
                 if x["label"] == "0" and x["clip_name"] not in heard]
        for clip in rng.choice(noise, min(buoy_clips, len(noise)), replace=False):
            score("buoy noise", "buoy noise", buoys / "train" / clip)
    for name, y, sr in noises(rng):
        score("synthetic noise", name, y.astype(np.float32), sr)
    for name, y, sr in new_noises(rng):
        score("new noise kinds", name, y.astype(np.float32), sr)
    return rows


def main() -> int:
    from deepdive.bundle import Bundle, resolve
    from deepdive.datasets import load_datasets

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--buoy-clips", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--leave-out", type=int, default=0, metavar="K",
                    help="train K models, each without one of K groups of species, and score those species as unknown")
    ap.add_argument("--train-model", default="deepdive-resnet-fast", help="with --leave-out: the network trained")
    ap.add_argument("--out", default=str(ROOT / "runs" / "open-set"), help="with --leave-out: stores and models")
    ap.add_argument("--threshold", type=float, default=None,
                    help="flag above this novelty instead of each card's threshold (e.g. the bundle's, chosen out of fold)")
    add_flags(ap)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    recs = load_datasets("watkins", [str(SHARED / "watkins")])
    if args.leave_out:
        from _recipe import train_config

        from deepdive.features import MelConfig
        from deepdive.prepare import PrepareConfig, prepare
        from deepdive.train import train

        groups = species_groups(sorted({r.label for r in recs}), args.leave_out, args.seed)
        rows = []
        for i, held in enumerate(groups):
            tcfg, tag = train_config(args.train_model, args)
            work = Path(args.out) / f"{tag}-group{i}of{len(groups)}"
            model = work / "model"
            if not (model / "card.json").is_file():
                known = [r for r in recs if r.label not in held]
                prepare(known, work / "store", PrepareConfig(features=MelConfig(), pad="zeros", balance=True, seed=0),
                        source={"kind": "watkins", "path": str(SHARED / "watkins")})
                train(work / "store", model, tcfg, progress=False)
            bundle = Bundle.load(model)
            print(f"group {i}: held out {', '.join(held)}; card threshold {bundle.novelty.threshold:g}", file=sys.stderr, flush=True)
            rows += score_all(bundle, recs, set(held), rng, args.buoy_clips // len(groups), args.threshold)
        rule = "each card's novelty threshold" if args.threshold is None else f"novelty threshold {args.threshold:g}"
        print(f"`{tag}`, {len(groups)} models, each trained without one group of species ({rule})\n")
        for i, held in enumerate(groups):
            print(f"- group {i} held out: {', '.join(held)}")
        print()
        report(rows)
        return 0
    bundle = resolve(args.model, "species")
    judge = bundle.novelty_judge
    if judge is None:
        print(f"{bundle.path}: no novelty fit (train it with a validation split, or --novelty-from)", file=sys.stderr)
        return 1
    known = set(bundle.labels)
    rows = score_all(bundle, recs, {r.label for r in recs if r.label not in known}, rng, args.buoy_clips, args.threshold)
    rule = f"{judge.novelty.threshold:g} (card)" if args.threshold is None else f"{args.threshold:g}"
    by = "" if judge is bundle else f", judged by `{judge.path.name}`"
    print(f"`{bundle.path.name}`{by}: {sum(r[0] == 'known' for r in rows)} known test recordings; novelty threshold {rule}\n")
    report(rows)
    if np.isfinite(judge.novelty.gate):
        under_gate(judge, recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
