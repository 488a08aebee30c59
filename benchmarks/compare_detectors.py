"""Compare the detector families on ../shared/data/rightwhale2k, on the same tape-disjoint split.

For each family (compact CNN on spectrogram images, Xception on resized images, Inception 1D and
InceptionTime on complexity-entropy series, the species model fine-tuned into a detector):
- the fixed split of `deepdive prepare kaggle` (seed 0): ROC AUC, AP, accuracy, precision, recall and F1
  at the validation-chosen threshold, clean and with white noise at 20, 10, 5 and 0 dB SNR;
- 5-fold cross-validation by tape (`--cv`): the pooled out-of-fold AUC, every clip scored by a model
  that never heard its tape (25 epochs each, no early stopping), and the spread over folds; with
  `--seeds N`, N trainings of every fold (model seeds 0..N-1, the same folds): the mean and standard
  deviation of the pooled AUC over seeds, and the AUC of the seeds' averaged probabilities;
- speed: clips per second through the whole inference path (2 s of audio at 2 kHz -> features -> ONNX
  Runtime), batch of 256 clips, on this machine, with the compact CNN as the reference (ratio).

    .venv/bin/python benchmarks/compare_detectors.py [--cv [--seeds N]] [--only NAME ...] [--out runs/compare]

On the challenge's own buoy clips (the seed's data), with a fixed number of epochs and no validation split
(8,034 clips: the fixed test split of `prepare kaggle`, by clip with identical clips kept together):

    .venv/bin/python benchmarks/compare_detectors.py --data ../shared/data/rightwhalecalls --epochs 8 --passes 2 \
        --out runs/compare-buoys

prints the same table beside the seed's own figures and the leaderboard's.

Prints a Markdown table and writes runs/compare/results.json, and with --cv each family's out-of-fold
probabilities to runs/compare/cv-NAME.json (seed 0; cv-NAME-sK.json for seed K;
`crossval_birdnet.py --detector --with-cnn` combines them with BirdNET's). Takes about 10 minutes
without --cv on two cores, about 40 with it; each further seed adds about 4 minutes for the compact
CNN and 12 for Xception. With --reuse, cross-validation runs already in --out are read, not redone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "rightwhale2k"


def families():
    from deepdive.features import OrdinalConfig, StftImageConfig
    from deepdive.train import TrainConfig

    species = ROOT / "src" / "deepdive" / "bundled" / "species"
    return {
        "detector-cnn": (StftImageConfig(), TrainConfig(model="detector-cnn", epochs=40, patience=8)),
        "xception": (StftImageConfig(image=(128, 128)), TrainConfig(model="xception", epochs=40, patience=8,
                                                                     model_options={"width": 0.25})),
        "inception1d": (OrdinalConfig(), TrainConfig(model="inception1d", epochs=40, patience=8, spec_augment=False)),
        "inceptiontime": (OrdinalConfig(), TrainConfig(model="inceptiontime", epochs=40, patience=8, spec_augment=False)),
        "species-transfer": (StftImageConfig(), TrainConfig(model="deepdive-resnet", epochs=40, patience=8,
                                                             init=str(species), lr=1e-3)),
    }


def prepare_config(feats, passes: int = 3, val_frac: float = 0.15):
    """How every family's clips are prepared, in the cross-validation folds too (as `make detector` did
    for rightwhale2k alone): every clip `passes` times, the extra passes shifted with noise and gain."""
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.prepare import PrepareConfig

    return PrepareConfig(features=feats, task="detection", positive=POSITIVE, min_last_s=1.0, pad="mirror",
                         shift="roll", augment_all=True, extra_slices=passes, val_frac=val_frac)


def open_data(out: str, data: Path = DATA):
    """(the challenge clips, the output folder made), or None without the shared data."""
    from deepdive.datasets import load_kaggle

    if not (data / "train.csv").is_file():
        print(f"needs {data}", file=sys.stderr)
        return None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return load_kaggle(data), folder


# What the seed (Whale Sound Detection) reported on the challenge's clips, and the leaderboard: its
# splits were random over clips, with noisy copies of training clips in the test set.
SEED_FIGURES = ("the seed's own figures (random splits, noisy copies of training clips in its test set): "
                "Xception on spectrogram images over 90% accuracy, 89.3% on noised data; Inception 1D on "
                "complexity-entropy series 83%; the challenge's best leaderboard ROC AUC 0.98384 (a hidden "
                "test set of the same buoys)")


def cv_runs(recs, out: Path, name: str, feats, tcfg, seeds: int, reuse: bool) -> list[dict]:
    """5-fold cross-validation by tape (25 epochs per fold, the same folds), once per model seed
    0..seeds-1; each run's out-of-fold probabilities are stored as OUT/NAME.json (seed 0) and
    OUT/NAME-sK.json, and with `reuse` read from there instead of trained again."""
    from deepdive.crossval import crossval_detector

    runs = []
    for seed in range(seeds):
        path = out / (f"{name}.json" if seed == 0 else f"{name}-s{seed}.json")
        if reuse and path.is_file():
            runs.append(json.loads(path.read_text()))
            continue
        runs.append(crossval_detector(recs, out / name, prepare_config(feats), replace(tcfg, epochs=25, patience=25),
                                      k=5, snrs_db=(), train_seed=seed))
        path.write_text(json.dumps(runs[-1]))
    return runs


def seed_summary(runs: list[dict]) -> dict:
    """Pooled out-of-fold AUC of each seed's run (same folds), their mean and sd, and the AUC of the
    seeds' averaged probabilities (what `deepdive train --ensemble N` ships)."""
    import numpy as np

    from deepdive.evaluate import roc_auc

    truth = dict(zip(runs[0]["clips"], runs[0]["truth"], strict=True))
    keys = sorted(truth)
    y = np.array([truth[k] for k in keys])
    probs = []
    for run in runs:
        p = dict(zip(run["clips"], run["probabilities"]["clean"], strict=True))
        probs.append([p[k] for k in keys])
    aucs = [float(run["conditions"]["clean"]["roc_auc"]) for run in runs]
    fold_means = [float(run["fold_auc_mean"]) for run in runs]
    return {"n": len(runs), "pooled_auc": [round(a, 4) for a in aucs], "pooled_auc_mean": round(float(np.mean(aucs)), 4),
            "pooled_auc_std": round(float(np.std(aucs)), 4), "fold_auc_mean_mean": round(float(np.mean(fold_means)), 4),
            "fold_auc_mean_std": round(float(np.std(fold_means)), 4),
            "ensemble_auc": round(float(roc_auc(y, np.mean(probs, 0))), 4)}


def _machine(device: str) -> str:
    """Where a model trained, in words: the GPU's name, or the CPU's core count."""
    import os

    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (cuda)"
    return f"cpu, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


def main() -> int:
    from bench_detectors import clips_per_second

    from deepdive.evaluate import evaluate_store
    from deepdive.prepare import prepare
    from deepdive.train import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--cv", action="store_true", help="also 5-fold cross-validation by tape")
    ap.add_argument("--seeds", type=int, default=1, help="with --cv: train every fold with this many model seeds")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default=str(ROOT / "runs" / "compare"))
    ap.add_argument("--reuse", action="store_true", help="evaluate models already trained in --out again, without training")
    ap.add_argument("--data", type=Path, default=DATA, help="a challenge-layout folder (default: rightwhale2k)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="train every family this many epochs, without a validation split (default: 40, early stopping)")
    ap.add_argument("--passes", type=int, default=3, help="times every training clip is stored (the extra ones augmented)")
    ap.add_argument("--device", default="cpu", help="where the networks train: cpu or cuda")
    ap.add_argument("--workers", type=int, default=1, help="processes computing features when a store is prepared")
    ap.add_argument("--train-only", action="store_true",
                    help="train (and record the training time) without evaluating; a later --reuse run, on another "
                         "machine too, evaluates the models and times them there")
    args = ap.parse_args()
    if (opened := open_data(args.out, args.data)) is None:
        return 1
    recs, out = opened
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name, (feats, tcfg) in families().items():
        if args.only and name not in args.only:
            continue
        pcfg = prepare_config(feats, args.passes, 0.15 if args.epochs is None else 0.0)
        if args.epochs is not None:
            tcfg = replace(tcfg, epochs=args.epochs, patience=args.epochs)
        store = out / f"store-{feats.kind}-{'x'.join(map(str, feats.shape))}"
        if not (store / "config.json").is_file():
            prepare(recs, store, pcfg, source={"kind": "kaggle", "path": str(args.data)}, workers=args.workers)
        previous = results.get(name, {})
        if args.reuse and (out / name / "model.onnx").is_file():
            model, train_s = out / name, previous.get("train_s", float("nan"))
        else:
            t0 = time.perf_counter()
            model = train(store, out / name, replace(tcfg, device=args.device), progress=False)
            train_s = time.perf_counter() - t0
            previous = {**previous, "trained_on": _machine(args.device)}
            if args.train_only:
                results[name] = {**previous, "train_s": round(train_s, 1)}
                results_path.write_text(json.dumps(results, indent=2))
                print(f"{name}: trained in {train_s:.0f} s", file=sys.stderr)
                continue
        report = evaluate_store(model, store, "test")
        row = {**previous, "train_s": round(train_s, 1), "test": report["conditions"],
               "clips_per_s": round(clips_per_second(model)[0], 1)}
        if args.cv:
            runs = cv_runs(recs, out, f"cv-{name}", feats, tcfg, args.seeds, args.reuse)
            cv = runs[0]
            row["cv"] = {"pooled_auc": cv["conditions"]["clean"]["roc_auc"], "fold_auc_mean": cv["fold_auc_mean"],
                         "fold_auc_std": cv["fold_auc_std"], "folds": cv["folds"]}
            if len(runs) > 1:
                row["cv"]["seeds"] = seed_summary(runs)
        results[name] = row
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{name}: done in {train_s:.0f} s", file=sys.stderr)

    ref = results.get("detector-cnn", {}).get("clips_per_s")
    print("| model | test AUC | AP | F1 | accuracy | AUC at 10 dB | AUC at 0 dB | CV AUC (pooled; folds mean ± sd) "
          "| clips/s | vs compact CNN | training |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
    for name, r in results.items():
        if "test" not in r:
            print(f"| {name} | trained, not evaluated yet (--reuse) |" + " |" * 9)
            continue
        c = r["test"]["clean"]
        cv = r.get("cv")
        cv_text = f"{cv['pooled_auc']:.3f}; {cv['fold_auc_mean']:.3f} ± {cv['fold_auc_std']:.3f}" if cv else "-"
        if cv and "seeds" in cv:
            sd = cv["seeds"]
            cv_text += (f"; {sd['n']} seeds: {' '.join(f'{a:.3f}' for a in sd['pooled_auc'])}, mean "
                        f"{sd['pooled_auc_mean']:.3f} ± {sd['pooled_auc_std']:.3f} (fold mean {sd['fold_auc_mean_mean']:.3f} "
                        f"± {sd['fold_auc_mean_std']:.3f}), averaged probabilities {sd['ensemble_auc']:.3f}")
        ratio = f"{r['clips_per_s'] / ref:.2f}x" if ref else "-"
        print(f"| {name} | {c['roc_auc']:.3f} | {c['average_precision']:.3f} | {c['f1']:.3f} | {c['accuracy']:.3f} | "
              f"{r['test']['10 dB']['roc_auc']:.3f} | {r['test']['0 dB']['roc_auc']:.3f} | {cv_text} | "
              f"{r['clips_per_s']:,.0f} | {ratio} | {r['train_s'] / 60:.1f} min, {r.get('trained_on', 'this machine')} |")
    print(f"\nBeside them, {SEED_FIGURES}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
