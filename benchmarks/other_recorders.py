"""Does the species model know a right whale when another recorder hears it?

The challenge's buoy clips (../shared/data/rightwhalecalls) are North Atlantic right whale up-calls
(label 1) and noise (label 0) from Cornell's auto-detection buoys in Massachusetts Bay: another
recorder, another place and another decade than the Watkins tapes the species models learnt, and
band-limited to 1 kHz (2 kHz sampling). A model that heard the animal and not the recorder ranks
"Northern Right Whale" first for the up-calls; the noise clips are none of its species.

Printed per model (`--model DIR ...`; default the bundled species model), over `--clips` clips of
each kind drawn at random: the share of up-calls ranked Northern Right Whale first and in the top 3,
their mean probability for it (and the noise clips'), how well that probability tells the up-calls
from the noise (ROC AUC: does the model hear the call, or only the buoy?), the share said to be
`known`; for the noise clips the share `known` (lower is better) and the species most often ranked
first; and for both the share that is `known` and ranked Northern Right Whale first: what a scan of the
buoy would mark as a right whale (species events come only from `known` windows), right for the
up-calls, false alarms for the noise.

Then the same question without leaving the Watkins tapes: the model's own test cuts (the card's
split: encounters it never trained on) of the species that call below 1 kHz (right, bowhead and fin
whales), scored as recorded and resampled to 4 kHz and 2 kHz, as a recorder digitising at those
rates would have kept them. The calls survive; a model that learnt where a recorder's band ends
does not.

    .venv/bin/python benchmarks/other_recorders.py [--model DIR ...] [--clips 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from _recipe import trained_on_clips, trained_on_noise

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "rightwhalecalls"
SPECIES = "Northern Right Whale"
LOW = ("Northern Right Whale", "Southern Right Whale", "Bowhead Whale", "Fin, Finback Whale")
RATES = (None, 4000, 2000)


def band_limited(bundle) -> str:
    """A table row: top-1 on the card's test cuts of the low-frequency species, as recorded and
    resampled to each of RATES."""
    from deepdive.audio import load, resample
    from deepdive.datasets import load_dataset
    from deepdive.predict import classify
    from deepdive.prepare import split_by_encounter

    recs = [r for r in load_dataset("watkins", str(ROOT.parent / "shared" / "data" / "watkins")) if r.label in bundle.labels]
    prep = bundle.card["prepare"]
    assign, _ = split_by_encounter(recs, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    test = [r for r in recs if assign[r.key] == "test" and r.label in LOW]
    cells = []
    for rate in RATES:
        hits = []
        for r in test:
            y, sr = load(r.path)
            if rate and sr > rate:
                y, sr = resample(y, sr, rate), rate
            hits.append(classify(y, sr=sr, model=bundle)[0]["species"] == r.label)
        cells.append(f"{np.mean(hits):.2f}")
    return f"{len(test)} | " + " | ".join(cells)


def main() -> int:
    from deepdive.bundle import resolve
    from deepdive.datasets.kaggle import POSITIVE, load_kaggle
    from deepdive.evaluate import roc_auc
    from deepdive.predict import classify

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", nargs="*", default=[None])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    recs = load_kaggle(args.data)
    rng = np.random.default_rng(args.seed)
    kinds = {}
    for name, group in (("up-calls", [r for r in recs if r.label == POSITIVE]), ("noise", [r for r in recs if r.label != POSITIVE])):
        kinds[name] = [group[i].path for i in sorted(rng.choice(len(group), min(args.clips, len(group)), replace=False))]
    # (a model whose training heard some of these clips is scored without them: the count drops a little)
    print(f"{len(kinds['up-calls'])} up-calls and {len(kinds['noise'])} noise clips of {args.data}\n")
    print(f"| model | up-calls: {SPECIES} first | in top 3 | mean p | noise: mean p | AUROC of p, up-calls against noise | "
          "up-calls: known | noise: known | known and first: up-calls | noise | noise: most often first |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for model in args.model:
        bundle = resolve(model, "species")
        # clips its training heard (noise, or up-calls with `prepare watkins --calls`) are not scored
        heard = trained_on_noise(bundle) | trained_on_clips(bundle)
        rows = {}
        for name, paths in kinds.items():
            paths = [p for p in paths if Path(p).name not in heard]
            ranks = [classify(p, model=bundle) for p in paths]
            first = [r[0]["species"] for r in ranks]
            rows[name] = {
                "top1": np.mean([f == SPECIES for f in first]),
                "top3": np.mean([SPECIES in [x["species"] for x in r[:3]] for r in ranks]),
                "ps": [next((x["probability"] for x in r if x["species"] == SPECIES), 0.0) for r in ranks],
                "known": np.mean([r.known is not False for r in ranks]),
                "named": np.mean([r.known is not False and f == SPECIES for r, f in zip(ranks, first, strict=True)]),
                "first": Counter(first).most_common(2),
                "n": len(paths),
            }
        up, nz = rows["up-calls"], rows["noise"]
        common = ", ".join(f"{s} {c / nz['n']:.0%}" for s, c in nz["first"])
        # does the model hear the call, or only the buoy? p(species) of the up-calls against the noise's
        auc = roc_auc(np.r_[np.ones(up["n"]), np.zeros(nz["n"])], np.r_[up["ps"], nz["ps"]])
        print(f"| {model or 'bundled'} ({up['n']} / {nz['n']}) | {up['top1']:.2f} | {up['top3']:.2f} | {np.mean(up['ps']):.3f} | "
              f"{np.mean(nz['ps']):.3f} | {auc:.2f} | {up['known']:.2f} | {nz['known']:.2f} | "
              f"{up['named']:.2f} | {nz['named']:.2f} | {common} |", flush=True)
    print(f"\nTop-1 on the model's test cuts of {', '.join(LOW)}, as recorded and resampled:\n")
    print("| model | cuts | as recorded | 4 kHz | 2 kHz |")
    print("|---|---:|---:|---:|---:|")
    for model in args.model:
        print(f"| {model or 'bundled'} | {band_limited(resolve(model, 'species'))} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
