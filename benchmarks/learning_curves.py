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
- buoys (`--task buoys`): is the buoy aim (ROC AUC 0.985; the challenge's 0.98384 was reached after
  training on 30,000 clips, ../shared/data/rightwhalecalls holds 8,034) a matter of how many clips
  a model hears? Fold `--buoy-folds` of `cross_source.py`'s 5 folds by clip (identical clips kept
  together); its model hears a fraction (`--fractions`) of the fold's training clips, drawn at random
  by group (nested: a draw's smaller fractions are prefixes of its larger ones), with the bundle's
  recipe on one source (`cross_source.py`'s `cnn-500`: every clip twice, 0-500 Hz), for as many
  training steps as the whole fold's 8 epochs (8 / fraction epochs; `--fixed-epochs`: 8 whatever the
  fraction, so that a smaller fraction is also a shorter training); model seed = draw. ROC AUC on
  the whole test fold, and a power law 1 - AUC = a * n^-b fitted to the mean per fraction,
  extrapolated to 24,000 clips (the challenge's training set less a fifth): a guide, not a
  measurement. About 30 minutes a curve (fold, draw) on 2 cores shared with other work.

    .venv/bin/python benchmarks/learning_curves.py [--task species|detector] [--birdnet-model PATH]
    .venv/bin/python benchmarks/learning_curves.py --task buoys [--fractions 0.25 0.5 1] [--buoy-folds 0 1] [--buoy-draws 2]

`species` and `detector` by default: about 10 minutes on 2 cores with the embeddings cached (runs/birdnet-layers.npz
and runs/birdnet-layers-rightwhale.npz, about 5 minutes more each to embed). Writes
runs/learning-curves.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from dataclasses import replace
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


def heard_subset(training: list, fraction: float, draw: int) -> list:
    """The training recordings a model hears: `fraction` of their groups (at least one), drawn at random
    by `draw`, whole groups (identical clips together); for one draw, a smaller fraction's groups are
    a prefix of a larger one's."""
    groups = sorted({r.group for r in training})
    order = np.random.default_rng(1000 + draw).permutation(len(groups))
    kept = {groups[j] for j in order[: max(1, round(fraction * len(groups)))]}
    return [r for r in training if r.group in kept]


def buoy_curve_cnn(args) -> dict:
    """ROC AUC on a buoy test fold against the number of training clips heard (see the module's text).
    Each (fold, fraction, draw) is saved under `--out`'s folder (learning-curve-buoys/) and read back
    by a later run with the same arguments, so a stopped run goes on where it stopped."""
    from cross_source import load, recipes

    from deepdive.crossval import crossval_detector

    recs = load("buoys")
    prep, tcfg = recipes()["cnn-500"]
    prep = replace(prep, source_passes={k: v for k, v in prep.source_passes.items() if k in {r.source for r in recs}})
    tcfg = replace(tcfg, device=args.device)
    work = Path(args.out).parent / "learning-curve-buoys"
    aucs: dict[float, list[float]] = {f: [] for f in sorted(args.fractions)}
    heard: dict[float, list[int]] = {f: [] for f in aucs}
    for fold in args.buoy_folds:  # a whole curve first, then the next draw or fold: a stopped run has whole curves
        for draw in range(args.buoy_draws):
            for f in aucs:
                def subset(i, training, f=f, draw=draw):
                    return heard_subset(training, f, draw)

                # as many training steps as on the whole fold: otherwise a small fraction is also a short training
                epochs = round(tcfg.epochs / f) if not args.fixed_epochs else tcfg.epochs
                name = f"f{f:g}-fold{fold}-d{draw}" + (f"-e{epochs}" if epochs != tcfg.epochs else "")
                run = crossval_detector(recs, work / name, prep, replace(tcfg, epochs=epochs, patience=epochs), k=5,
                                        seed=0, snrs_db=(), train_seed=draw, train_subset=subset, resume=True,
                                        only={fold})
                aucs[f].append(float([x for x in run["folds"] if x["fold"] == fold][0]["roc_auc"]))
                tested = set(run["clips"])
                heard[f].append(len(subset(fold, [r for r in recs if r.key not in tested])))
                print(f"  fraction {f:g}, fold {fold}, draw {draw}: {heard[f][-1]} clips heard, AUC {aucs[f][-1]:.4f}",
                      flush=True)
    points = {f: {"clips_heard": int(np.mean(heard[f])), **_point(aucs[f])} for f in aucs}
    n = np.array([p["clips_heard"] for p in points.values()], float)
    err = 1 - np.array([p["auc_mean"] for p in points.values()])
    slope, icpt = np.polyfit(np.log(n), np.log(err), 1) if len(n) > 1 else (np.nan, np.nan)
    extrapolated = {str(m): round(float(1 - np.exp(icpt) * m ** slope), 4) for m in (24_000,)}
    print("\nBuoys, detector-cnn (cnn-500): ROC AUC on the test fold against the training clips heard "
          f"(folds {args.buoy_folds}, {args.buoy_draws} draws each: mean ± sd; "
          + ("8 epochs" if args.fixed_epochs else "8 / fraction epochs") + ")\n")
    print("| fraction of the fold's training clips | " + " | ".join(f"{f:g}" for f in points) + " |")
    print("|---|" + "---:|" * len(points))
    print("| clips heard | " + " | ".join(str(p["clips_heard"]) for p in points.values()) + " |")
    print("| ROC AUC | " + " | ".join(f"{p['auc_mean']:.4f} ± {p['auc_sd']:.4f}" for p in points.values()) + " |")
    print(f"\npower law 1 - AUC = {np.exp(icpt):.3g} * n^{slope:.3f}; at 24,000 clips: {extrapolated['24000']}")
    return {"recipe": "cnn-500", "fixed_epochs": args.fixed_epochs, "folds": args.buoy_folds, "draws": args.buoy_draws,
            "points": {str(f): p for f, p in points.items()},
            "power_law": {"a": float(np.exp(icpt)), "b": float(-slope)}, "extrapolated_auc": extrapolated}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["species", "detector", "both", "buoys"], default="both")
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
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                    help="buoys: fractions of a fold's training clips heard")
    ap.add_argument("--buoy-folds", type=int, nargs="+", default=[0], help="buoys: which of the 5 folds")
    ap.add_argument("--buoy-draws", type=int, default=2, help="buoys: draws (and model seeds) per fraction and fold")
    ap.add_argument("--fixed-epochs", action="store_true",
                    help="buoys: the recipe's 8 epochs at every fraction (default: 8 / fraction, the same steps)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="default runs/learning-curves.json (--task buoys: "
                                                  "runs/learning-curve-buoys.json)")
    args = ap.parse_args()
    args.out = args.out or ("runs/learning-curve-buoys.json" if args.task == "buoys" else "runs/learning-curves.json")
    result = {}
    if args.task in ("species", "both"):
        result["species"] = species_curve(args)
    if args.task in ("detector", "both"):
        result["detector"] = detector_curve(args)
        if args.cnn_tapes:
            result["detector_cnn"] = detector_curve_cnn(args)
    if args.task == "buoys":
        result["buoys"] = buoy_curve_cnn(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
