"""How well does a detector's threshold, chosen on its training tapes, hold on tapes it never heard?

The bundled detector's threshold comes from out-of-fold scores of its own training tapes
(`deepdive train --threshold-folds 4`), by a rule: maximum F1, or a target recall. This script
measures each rule the way a user meets it, by nested cross-validation on
../shared/data/rightwhale2k:
- 5 outer folds by tape (the folds of `compare_detectors.py --cv`); each outer model is the compact
  CNN trained like `compare_detectors.py --cv` (25 epochs) on the other four folds, with
  `--threshold-folds 4`: four inner models on those tapes alone, stopped at the outer model's epoch,
  whose out-of-fold scores give the threshold of every rule (the card's operating points);
- every rule's threshold is then applied to the outer fold's clips, which neither the model nor the
  threshold has heard; the counts are pooled over the five folds.

    .venv/bin/python benchmarks/threshold_rules.py [--seeds 3] [--out runs/compare] [--reuse]

Prints, per rule, the recall, precision, F1 and false-alarm rate reached on unseen tapes (mean ± sd
over model seeds 0..N-1), next to the recall the rule promised on the training tapes. Each seed trains
25 models, about 16 minutes on two cores; runs are stored as runs/compare/cv-thresholds[-sK].json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rule_table(runs: list[dict]) -> list[dict]:
    """Per rule: the unseen-tape recall, precision, F1 and false-alarm rate of each run (pooled over its
    folds), and the recall the rule had on the training tapes' out-of-fold scores (mean over folds)."""
    rules = [op["rule"] for op in runs[0]["folds"][0]["operating_points"]]
    rows = []
    for j, rule in enumerate(rules):
        per_run = {"recall": [], "precision": [], "f1": [], "false_alarm_rate": [], "promised_recall": [], "threshold": []}
        for run in runs:
            p = np.array(run["probabilities"]["clean"])
            y = np.array(run["truth"])
            tp = fp = fn = tn = 0
            start = 0
            for fold in run["folds"]:
                sl = slice(start, start + fold["clips"])
                start += fold["clips"]
                op = fold["operating_points"][j]
                pred, truth = p[sl] >= op["threshold"], y[sl] == 1
                tp += int((pred & truth).sum())
                fp += int((pred & ~truth).sum())
                fn += int((~pred & truth).sum())
                tn += int((~pred & ~truth).sum())
                per_run["promised_recall"].append(op["recall"])
                per_run["threshold"].append(op["threshold"])
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            per_run["recall"].append(recall)
            per_run["precision"].append(precision)
            per_run["f1"].append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
            per_run["false_alarm_rate"].append(fp / (fp + tn) if fp + tn else 0.0)
        rows.append({"rule": rule, **{k: (float(np.mean(v)), float(np.std(v))) for k, v in per_run.items()},
                     "threshold_range": (float(np.min(per_run["threshold"])), float(np.max(per_run["threshold"])))})
    return rows


def main() -> int:
    from compare_detectors import cv_runs, families, open_data

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3, help="model seeds 0..N-1, the same folds")
    ap.add_argument("--out", default=str(ROOT / "runs" / "compare"))
    ap.add_argument("--reuse", action="store_true", help="read runs already in --out")
    args = ap.parse_args()
    if (opened := open_data(args.out)) is None:
        return 1
    recs, out = opened
    feats, tcfg = families()["detector-cnn"]
    runs = cv_runs(recs, out, "cv-thresholds", feats, replace(tcfg, threshold_folds=4), args.seeds, args.reuse)
    aucs = [r["conditions"]["clean"]["roc_auc"] for r in runs]
    n = len(runs[0]["truth"])
    print(f"{len(runs)} model seeds, {n} clips ({sum(runs[0]['truth'])} calls) from 5 tape folds; pooled out-of-fold AUC "
          f"{' '.join(f'{a:.3f}' for a in aucs)}\n")
    print("| threshold rule (on the training tapes) | thresholds chosen | recall there | recall on unseen tapes "
          "| precision | F1 | false alarms (share of noise clips) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rule_table(runs):
        ms = {k: f"{v[0]:.2f} ± {v[1]:.2f}" for k, v in r.items() if isinstance(v, tuple)}
        lo, hi = r["threshold_range"]
        print(f"| {r['rule']} | {lo:.2f}–{hi:.2f} | {r['promised_recall'][0]:.2f} | {ms['recall']} | {ms['precision']} | "
              f"{ms['f1']} | {ms['false_alarm_rate']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
