"""The card's "none of these" threshold, chosen out of fold: each fold model of a cross-validation run
(kept with `leave_gear_out.py --keep-models`) gets its novelty fitted again with today's code (on its own
training and validation windows, as `train` does), scores its test recordings (encounters it never
heard), and the pooled novelties say which threshold keeps 95% (or 90%) of known-species recordings
known, and what each candidate threshold flags, per fold and per species. The same for a leave-one-
system-out run (`--only systems --keep-models`): what a threshold flags when the recorder is new.

A novelty fit changes without training again (the gate, the tail past the furthest validation
recording): this measures it on the same networks. The networks, the stores and the folds are the
run's; nothing is trained.

    .venv/bin/python benchmarks/novelty_threshold.py runs/lgo-gate2/work-deepdive-resnet-fast-centred-oe-syn256-encounters \
        [--thresholds 0.99,0.999] [--out runs/novelty-threshold.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def refit_fold(fold_dir: Path) -> tuple[dict[str, float], dict[str, str], dict]:
    """A kept fold's test novelties by a novelty fit made now ({key: novelty}, {key: label}, the fit's
    card summary). The threshold in the fit does not matter here."""
    from deepdive.bundle import Bundle
    from deepdive.novelty import fit_store, score_split
    from deepdive.store import FeatureStore

    bundle = Bundle.load(fold_dir / "model", precision="fp32")
    store = FeatureStore(fold_dir / "store")
    model, summary = fit_store(bundle, store)
    novelty = score_split(bundle, store, "test", model)  # as `classify` would judge with the new fit saved
    label = {store.rows[i]["key"]: store.rows[i]["label"] for i in store.indices("test")}
    return novelty, {k: label[k] for k in novelty}, summary


def main() -> int:
    from deepdive.errors import DatasetError
    from deepdive.novelty import threshold_for

    ap = argparse.ArgumentParser()
    ap.add_argument("work", help="a crossval_species work folder whose foldI/model and foldI/store were kept")
    ap.add_argument("--thresholds", default="0.95,0.99,0.999,0.9999", help="candidate thresholds to report")
    ap.add_argument("--out", help="write the pooled novelties and the choice as JSON")
    args = ap.parse_args()
    work = Path(args.work)
    folds = sorted(p for p in work.glob("fold*") if (p / "model" / "card.json").is_file() and (p / "store").is_dir())
    if not folds:
        print(f"{work}: no kept fold (run leave_gear_out.py with --keep-models)", file=sys.stderr)
        return 2
    novelty: dict[str, float] = {}
    label: dict[str, str] = {}
    fold_of: dict[str, str] = {}
    gates = {}
    for f in folds:
        try:
            nov, lab, summary = refit_fold(f)
        except DatasetError as e:  # a fold without validation windows has no novelty fit
            print(f"{f.name}: left out ({e})", file=sys.stderr)
            continue
        novelty.update(nov)
        label.update(lab)
        fold_of.update({k: f.name for k in nov})
        gates[f.name] = summary.get("gate_db")
        print(f"{f.name}: {len(nov)} test recordings, gate {summary.get('gate_db')} dB", file=sys.stderr, flush=True)
    keys = sorted(novelty)
    v = np.array([novelty[k] for k in keys])
    cands = [float(t) for t in args.thresholds.split(",") if t]
    t95, t90 = threshold_for(v, 0.95), threshold_for(v, 0.90)
    folds = [f for f in folds if f.name in gates]  # those with a novelty fit
    print(f"{len(keys)} known-species recordings of {len(folds)} folds, each scored by a model that never heard "
          f"its test fold: its encounter, or its recording system for a leave-one-system-out run (novelty refitted now; gates {', '.join(f'{g:g}' for g in gates.values() if g is not None)} dB)\n")
    print(f"Threshold keeping 95% known: {t95:.6f}; 90%: {t90:.6f}. At novelty 1 (no window above the gate): "
          f"{np.mean(v >= 1.0):.3f}\n")
    shown = sorted(set(cands) | {t95})
    print("| recordings | count | " + " | ".join(f"flagged at {t:.6g}" for t in shown) + " |")
    print("|---|---:|" + "---:|" * len(shown))

    def row(name, ks):
        x = np.array([novelty[k] for k in ks])
        print(f"| {name} | {len(ks)} | " + " | ".join(f"{np.mean(x > t):.3f}" for t in shown) + " |")

    row("all", keys)
    for f in folds:
        row(f.name, [k for k in keys if fold_of[k] == f.name])
    by_species = defaultdict(list)
    for k in keys:
        by_species[label[k]].append(k)
    for lab in sorted(by_species):
        row(lab, by_species[lab])
    if args.out:
        Path(args.out).write_text(json.dumps({"work": str(work), "threshold_95": t95, "threshold_90": t90,
                                              "gates": gates, "novelty": novelty, "label": label}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
