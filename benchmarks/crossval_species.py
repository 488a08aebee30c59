"""Species models scored by cross-validation over encounters on ../shared/data/watkins.

One test split holds a few encounters per species, and a training run's test top-1 moves by about
±0.1 with its seed. Here every cut is scored by a model that never heard its encounter (or, for a
species recorded in a single encounter, its tape or block of cuts): `crossval.crossval_species`
trains k models (fold i tested, fold i+1 for early stopping) with the shipped recipe and pools the
out-of-fold recording probabilities. Prints one row per model and writes the JSON beside it.

    .venv/bin/python benchmarks/crossval_species.py [--models deepdive-resnet-fast deepdive-resnet] [--k 5]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from _recipe import add_flags, train_config

from deepdive.crossval import crossval_species
from deepdive.datasets import load_dataset
from deepdive.features import MelConfig
from deepdive.prepare import PrepareConfig


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/watkins")
    ap.add_argument("--models", nargs="+", default=["deepdive-resnet-fast", "deepdive-resnet"])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--band-cut", type=float, default=0.0)
    add_flags(ap)
    ap.add_argument("--out", default="runs/cv-species")
    args = ap.parse_args()
    recs = load_dataset("watkins", args.data)
    prep = PrepareConfig(features=MelConfig(), pad="zeros", balance=True, seed=0)  # as `deepdive prepare watkins`
    out = Path(args.out)
    print("| model | recordings | top-1 | top-3 | macro-F1 | unseen encounters: top-1 | top-3 | fold top-1 mean ± sd | minutes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        t = time.perf_counter()
        tcfg, tag = train_config(name, args)
        tcfg = replace(tcfg, band_cut=args.band_cut)
        tag += f"-bc{args.band_cut:g}" if args.band_cut else ""
        cv = crossval_species(recs, out / tag, prep, tcfg, k=args.k, resume=True,
                              progress=lambda i, k, f: print(f"  fold {i}/{k}: {f}", flush=True))
        (out / f"{tag}.json").write_text(json.dumps(cv, indent=1))
        r, e = cv["recording"], cv["encounter_disjoint"]["recording"]
        print(f"| {tag} | {r['n']} | {r['accuracy']:.3f} | {r['top3_accuracy']:.3f} | {r['macro_f1']:.3f} | "
              f"{e['accuracy']:.3f} | {e['top3_accuracy']:.3f} | {cv['fold_accuracy_mean']:.3f} ± {cv['fold_accuracy_std']:.3f} | "
              f"{(time.perf_counter() - t) / 60:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
