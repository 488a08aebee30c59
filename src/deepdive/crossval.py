"""Grouped cross-validation of detectors: every clip scored by a model that never heard its tape.

With a few hundred clips from a few dozen tapes, one test split holds a handful of tapes and its AUC
swings with which tapes they are. Cross-validation by group (`prepare.group_folds`) trains k models,
each tested on the tapes it left out, and pools the out-of-fold probabilities: one AUC over every clip,
plus the spread over folds. Each fold trains for the configured epochs without a validation split
(the early-stopping monitor is then the training loss), so no tape is used for choices about itself.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from .datasets.base import Recording
from .evaluate import NOISE_SNRS_DB, detection_metrics, evaluate_detection
from .prepare import PrepareConfig, group_folds, prepare


def crossval_detector(
    recordings: list[Recording],
    work: str | Path,
    prep_cfg: PrepareConfig,
    train_cfg,
    k: int = 5,
    seed: int = 0,
    snrs_db=NOISE_SNRS_DB,
    keep_models: bool = False,
    progress=None,
    train_seed: int | None = None,
) -> dict:
    """Train and test `k` detectors on group folds; returns pooled and per-fold metrics.

    `seed` makes the folds; `train_seed` (default: `seed`) seeds the models, so several runs over the
    same folds can be averaged into an ensemble."""
    from .train import train

    work = Path(work)
    folds = group_folds(recordings, k, seed)
    positive = prep_cfg.positive
    truth_of = {r.key: int(r.label == positive) for r in recordings}
    pooled: dict[str, list[float]] = {}
    keys: list[str] = []
    per_fold = []
    for i, test_keys in enumerate(folds):
        if not test_keys:
            continue
        held = set(test_keys)
        assignment = {r.key: ("test" if r.key in held else "train") for r in recordings}
        store, model = work / f"fold{i}" / "store", work / f"fold{i}" / "model"
        prepare(recordings, store, replace(prep_cfg, seed=seed), assignment=assignment)
        train(store, model, replace(train_cfg, seed=(seed if train_seed is None else train_seed) + i), progress=False)
        report = evaluate_detection(model, [(key, truth_of[key]) for key in test_keys], snrs_db, seed=seed)
        per_fold.append({"fold": i, "clips": len(report["clips"]), "positives": int(sum(report["truth"])),
                         "roc_auc": report["conditions"]["clean"]["roc_auc"]})
        keys += report["clips"]
        for cond, probs in report["probabilities"].items():
            pooled.setdefault(cond, []).extend(probs)
        if not keep_models:
            shutil.rmtree(work / f"fold{i}", ignore_errors=True)
        if progress:
            progress(i + 1, k, per_fold[-1])
    truth = np.array([truth_of[key] for key in keys])
    threshold = 0.5
    return {
        "k": k, "seed": seed, "model": train_cfg.model, "features": prep_cfg.features.to_dict(),
        "folds": per_fold,
        "fold_auc_mean": round(float(np.nanmean([f["roc_auc"] for f in per_fold])), 4),
        "fold_auc_std": round(float(np.nanstd([f["roc_auc"] for f in per_fold])), 4),
        "conditions": {c: detection_metrics(truth, np.array(p), threshold) for c, p in pooled.items()},
        "clips": keys, "truth": truth.tolist(), "probabilities": pooled,
    }


__all__ = ["crossval_detector", "PrepareConfig"]
