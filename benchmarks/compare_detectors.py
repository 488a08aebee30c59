"""Compare the detector families on ../shared/data/rightwhale2k, on the same tape-disjoint split.

For each family (compact CNN on spectrogram images, Xception on resized images, Inception 1D and
InceptionTime on complexity-entropy series, the species model fine-tuned into a detector):
- the fixed split of `deepdive prepare kaggle` (seed 0): ROC AUC, AP, accuracy, precision, recall and F1
  at the validation-chosen threshold, clean and with white noise at 20, 10, 5 and 0 dB SNR;
- 5-fold cross-validation by tape (`--cv`): the pooled out-of-fold AUC, every clip scored by a model
  that never heard its tape (25 epochs each, no early stopping), and the spread over folds;
- speed: clips per second through the whole inference path (2 s of audio at 2 kHz -> features -> ONNX
  Runtime), batch of 256 clips, on this machine, with the compact CNN as the reference (ratio).

    .venv/bin/python benchmarks/compare_detectors.py [--cv] [--only NAME ...] [--out runs/compare]

Prints a Markdown table and writes runs/compare/results.json, and with --cv each family's out-of-fold
probabilities to runs/compare/cv-NAME.json (`crossval_birdnet.py --detector --with-cnn` combines
them with BirdNET's). Takes about 10 minutes without --cv on two cores, about 40 with it.
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


def main() -> int:
    from bench_detectors import clips_per_second

    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_kaggle
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.evaluate import evaluate_store
    from deepdive.prepare import PrepareConfig, prepare
    from deepdive.train import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--cv", action="store_true", help="also 5-fold cross-validation by tape")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default=str(ROOT / "runs" / "compare"))
    ap.add_argument("--reuse", action="store_true", help="evaluate models already trained in --out again, without training")
    args = ap.parse_args()
    if not (DATA / "train.csv").is_file():
        print(f"needs {DATA}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recs = load_kaggle(DATA)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name, (feats, tcfg) in families().items():
        if args.only and name not in args.only:
            continue
        pcfg = PrepareConfig(features=feats, task="detection", positive=POSITIVE, min_last_s=1.0, pad="mirror",
                             shift="roll", augment_all=True)
        store = out / f"store-{feats.kind}-{'x'.join(map(str, feats.shape))}"
        if not (store / "config.json").is_file():
            prepare(recs, store, pcfg, source={"kind": "kaggle", "path": str(DATA)})
        previous = results.get(name, {})
        if args.reuse and (out / name / "model.onnx").is_file():
            model, train_s = out / name, previous.get("train_s", float("nan"))
        else:
            t0 = time.perf_counter()
            model = train(store, out / name, tcfg, progress=False)
            train_s = time.perf_counter() - t0
        report = evaluate_store(model, store, "test")
        row = {**previous, "train_s": round(train_s, 1), "test": report["conditions"],
               "clips_per_s": round(clips_per_second(model)[0], 1)}
        if args.cv and not (args.reuse and "cv" in previous):
            cv = crossval_detector(recs, out / f"cv-{name}", replace(pcfg), replace(tcfg, epochs=25, patience=25), k=5,
                                   snrs_db=())
            row["cv"] = {"pooled_auc": cv["conditions"]["clean"]["roc_auc"], "fold_auc_mean": cv["fold_auc_mean"],
                         "fold_auc_std": cv["fold_auc_std"], "folds": cv["folds"]}
            (out / f"cv-{name}.json").write_text(json.dumps(cv))  # every clip's out-of-fold probability
        results[name] = row
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{name}: done in {train_s:.0f} s", file=sys.stderr)

    ref = results.get("detector-cnn", {}).get("clips_per_s")
    print("| model | test AUC | AP | F1 | accuracy | AUC at 10 dB | AUC at 0 dB | CV AUC (pooled; folds mean ± sd) "
          "| clips/s | vs compact CNN |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name, r in results.items():
        c = r["test"]["clean"]
        cv = r.get("cv")
        cv_text = f"{cv['pooled_auc']:.3f}; {cv['fold_auc_mean']:.3f} ± {cv['fold_auc_std']:.3f}" if cv else "-"
        ratio = f"{r['clips_per_s'] / ref:.2f}x" if ref else "-"
        print(f"| {name} | {c['roc_auc']:.3f} | {c['average_precision']:.3f} | {c['f1']:.3f} | {c['accuracy']:.3f} | "
              f"{r['test']['10 dB']['roc_auc']:.3f} | {r['test']['0 dB']['roc_auc']:.3f} | {cv_text} | "
              f"{r['clips_per_s']:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
