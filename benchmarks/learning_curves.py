"""How accuracy on encounters never heard grows with the number of encounters a model has heard.

The species aim (top-1 0.85 / top-3 0.95 on unseen encounters) and the detector aim (ROC AUC 0.98 on
unseen tapes) are measured on data with few encounters: 1 to 4 per species in ../shared/data/watkins,
10 call tapes in ../shared/data/rightwhale2k. This asks how much that limits them, with the fastest
strong model measured here, BirdNET's embedding and a logistic regression (`crossval_birdnet.py`,
whose cache of embeddings it reads or writes, and whose fit it uses):

- species (`--task species`, rows `0.5,1,10:embedding` by default): for every species with two or
  more encounters, every encounter of it is held out in turn; the model hears k of that species'
  other encounters (every subset of that size, k = 1 .. n-1) and every cut of the other species
  except the held-out ones, and scores the held-out encounter's cuts. Top-1 and top-3 are averaged
  per (species, k), then over species; a row k is given for the species that have more than k
  encounters, so that the columns compare the same species as k grows.
- detector (`--task detector`, rows `1:embedding`): the 5 tape folds of `compare_detectors.py
  --cv`; in each fold the model hears every noise clip outside the fold and the calls of m of the
  fold's call tapes (drawn at random, `--draws` times); the pooled out-of-fold ROC AUC per m. With
  `--cnn-tapes 2 4 6`, the shipped network too (`detector-cnn`, the recipe of `compare_detectors.py
  --cv`, model seed 0, `--cnn-draws` draws per m; about 4 minutes a draw on 2 cores).

    .venv/bin/python benchmarks/learning_curves.py [--task species|detector] [--birdnet-model PATH]

Both tasks by default: about 10 minutes on 2 cores with the embeddings cached (runs/birdnet-layers.npz
and runs/birdnet-layers-rightwhale.npz, about 5 minutes more each to embed). Writes
runs/learning-curves.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from crossval_birdnet import _features, _fit_predict, _row_features, scores

from deepdive.datasets import load_dataset


def species_curve(args) -> dict:
    recs = load_dataset("watkins", args.data)
    labels = sorted({r.label for r in recs})
    truth = np.array([labels.index(r.label) for r in recs])
    groups = np.array([r.group for r in recs])
    speeds = [0.25, 0.5, 1.0, 2.0, 4.0, 10.0]  # what crossval_birdnet.py embeds and caches
    feats = _row_features(_features(recs, speeds, args.birdnet_model, Path(args.cache), args.data), speeds, args.row)
    runs = []
    for s, lab in enumerate(labels):
        encounters = sorted(set(groups[truth == s]))
        if len(encounters) < 2:
            continue
        for held in encounters:
            test = np.where((groups == held) & (truth == s))[0]
            others = [e for e in encounters if e != held]
            for k in range(1, len(others) + 1):
                for heard in itertools.combinations(others, k):
                    train = np.where((truth != s) | np.isin(groups, heard))[0]
                    got = scores(_fit_predict(feats, truth, train, test, len(labels), args.c), truth[test])
                    runs.append({"species": lab, "encounters": len(encounters), "held_out": held, "k": k,
                                 "heard": list(heard), **got})
    per = defaultdict(list)
    for r in runs:
        per[(r["species"], r["encounters"], r["k"])].append((r["top1"], r["top3"]))
    per_species = {f"{s} | {k}": np.mean(v, 0).round(3).tolist() for (s, _, k), v in sorted(per.items())}
    most = max(r["encounters"] for r in runs)
    table = {}
    for at_least in range(2, most + 1):
        names = sorted({s for (s, n, _) in per if n >= at_least})
        table[at_least] = {"species": names, "k": {k: np.mean([np.mean(per[(s, n, k)], 0) for (s, n, kk) in per
                                                              if n >= at_least and kk == k], 0).round(3).tolist()
                                                   for k in range(1, at_least)}}
    print(f"\nSpecies, {args.row}: top-1 / top-3 on a held-out encounter, after hearing k other encounters of its species\n")
    print("| encounters heard (k) | " + " | ".join(f"species with {n}+ encounters ({len(t['species'])})"
                                                   for n, t in table.items()) + " |")
    print("|---|" + "---:|" * len(table))
    for k in range(1, most):
        cells = [("{:.2f} / {:.2f}".format(*t["k"][k]) if k in t["k"] else "") for t in table.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")
    return {"row": args.row, "c": args.c, "table": {str(n): t for n, t in table.items()},
            "per_species_k": per_species, "runs": runs}


def _point(aucs: list[float]) -> dict:
    return {"auc_mean": round(float(np.mean(aucs)), 4), "auc_sd": round(float(np.std(aucs)), 4), "draws": len(aucs),
            "aucs": [round(float(a), 4) for a in aucs]}


def _print_curve(model: str, curve: dict) -> None:
    print(f"\nDetector, {model}: pooled out-of-fold ROC AUC when each fold's model hears m of its call tapes\n")
    print("| call tapes heard (m) | " + " | ".join(str(m) for m in curve) + " |")
    print("|---|" + "---:|" * len(curve))
    print("| ROC AUC (mean ± sd over draws) | " + " | ".join(f"{c['auc_mean']:.3f} ± {c['auc_sd']:.3f}"
                                                             for c in curve.values()) + " |")


def detector_curve_cnn(args) -> dict:
    """The same with the shipped network: `compare_detectors.py --cv`'s recipe for detector-cnn (25
    epochs per fold, model seed 0), each fold trained on all its noise clips and m of its call tapes."""
    from dataclasses import replace

    from compare_detectors import families, prepare_config

    from deepdive.crossval import crossval_detector
    from deepdive.datasets.kaggle import POSITIVE, load_kaggle

    recs = load_kaggle(args.data_detector)
    feats, tcfg = families()["detector-cnn"]
    tcfg = replace(tcfg, epochs=25, patience=25)
    rng = np.random.default_rng(0)

    def heard(m):
        def subset(fold, training):
            tapes = sorted({r.group for r in training if r.label == POSITIVE})
            kept = set(rng.choice(tapes, size=min(m, len(tapes)), replace=False))
            return [r for r in training if r.label != POSITIVE or r.group in kept]
        return subset

    curve = {}
    for m in args.cnn_tapes:
        aucs = []
        for _ in range(args.cnn_draws):
            run = crossval_detector(recs, Path(args.out).parent / "learning-curve-cnn", prepare_config(feats), tcfg,
                                    k=5, snrs_db=(), train_seed=0, train_subset=heard(m))
            aucs.append(float(run["conditions"]["clean"]["roc_auc"]))
            print(f"  m={m}: {aucs[-1]:.3f}", flush=True)
        curve[m] = _point(aucs)
    _print_curve("detector-cnn", curve)
    return {"model": "detector-cnn", "draws": args.cnn_draws, "curve": curve}


def detector_curve(args) -> dict:
    from deepdive.datasets.kaggle import POSITIVE, load_kaggle
    from deepdive.evaluate import roc_auc
    from deepdive.prepare import group_folds

    recs = load_kaggle(args.data_detector)
    speeds = [1.0, 2.0, 4.0, 8.0, 16.0]  # what crossval_birdnet.py --detector embeds and caches
    X = _features(recs, speeds, args.birdnet_model, Path(args.cache_detector), args.data_detector)
    X = {name: x[:, :, : x.shape[2] // 2] for name, x in X.items()}  # one chunk per clip: its mean is its max
    feats = _row_features(X, speeds, args.detector_row)
    truth = np.array([int(r.label == POSITIVE) for r in recs])
    groups = np.array([r.group for r in recs])
    row_of = {r.key: i for i, r in enumerate(recs)}
    folds = [np.array([row_of[k] for k in f]) for f in group_folds(recs, 5, 0) if f]
    rng = np.random.default_rng(0)
    trains = [np.setdiff1d(np.arange(len(recs)), test) for test in folds]
    call_tapes = [sorted(set(groups[train][truth[train] == 1])) for train in trains]
    most = max(len(tapes) for tapes in call_tapes)
    curve = {}
    for m in range(1, most + 1):
        aucs = []
        for _ in range(args.draws if m < most else 1):  # every fold hears all its call tapes: one draw
            probs = np.zeros(len(recs))
            for test, train, tapes in zip(folds, trains, call_tapes, strict=True):
                heard = rng.choice(tapes, size=min(m, len(tapes)), replace=False)
                train = train[(truth[train] == 0) | np.isin(groups[train], heard)]
                probs[test] = _fit_predict(feats, truth, train, test, 2, args.c)[:, 1]
            aucs.append(roc_auc(truth, probs))
        curve[m] = _point(aucs)
    _print_curve(args.detector_row, curve)
    return {"row": args.detector_row, "c": args.c, "draws": args.draws, "curve": curve}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["species", "detector", "both"], default="both")
    ap.add_argument("--birdnet-model", default=".birdnet/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
                    help="BirdNET's model file, to embed what the caches lack (default: where `make test` puts it)")
    ap.add_argument("--data", default="../shared/data/watkins")
    ap.add_argument("--data-detector", default="../shared/data/rightwhale2k")
    ap.add_argument("--cache", default="runs/birdnet-layers.npz")
    ap.add_argument("--cache-detector", default="runs/birdnet-layers-rightwhale.npz")
    ap.add_argument("--row", default="0.5,1,10:embedding", help="species features, SPEEDS:LAYERS as in crossval_birdnet.py")
    ap.add_argument("--detector-row", default="1:embedding")
    ap.add_argument("--c", type=float, default=0.05, help="inverse L2 strength")
    ap.add_argument("--draws", type=int, default=20, help="detector: random draws of the tapes heard, per m")
    ap.add_argument("--cnn-tapes", type=int, nargs="*", default=[],
                    help="detector: also train the compact CNN hearing each of these numbers of call tapes (about 4 "
                         "minutes a draw on 2 cores), e.g. 2 4 6")
    ap.add_argument("--cnn-draws", type=int, default=2)
    ap.add_argument("--out", default="runs/learning-curves.json")
    args = ap.parse_args()
    result = {}
    if args.task in ("species", "both"):
        result["species"] = species_curve(args)
    if args.task in ("detector", "both"):
        result["detector"] = detector_curve(args)
        if args.cnn_tapes:
            result["detector_cnn"] = detector_curve_cnn(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
