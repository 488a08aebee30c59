"""Does the species model hear the animal or the recorder? Leave one recording system out.

The Watkins cuts name their recording gear (`gear` in metadata.csv); `recording_system` maps the
free text to about ten systems (Ithaco/Pemtek, AX-58 with a Crown or a Magnecorder deck, sonobuoys,
Nagra, Ampex, TEAC, VHS...). For each system S, a model is trained on every other system's cuts and
tested on S's cuts of the species also recorded with another system (`crossval.gear_folds`). Beside
it, cross-validation over encounters (`crossval_species`, as `crossval_species.py`) scores the same
cuts: the gap between the two is what a new recorder costs.

Printed: top-1 and top-3 over the cuts that can be scored, leave-one-system-out against encounter
cross-validation; per system; per species; and "none of these" out of fold (each fold's model gets its
novelty fit: the share of known-species cuts it flags, and the threshold that would keep 90% or 95%
of them known). The runs go to --out as JSON (`--reuse` reads them).
About 13 trainings: roughly two hours for deepdive-resnet on 2 cores.

    .venv/bin/python benchmarks/leave_gear_out.py [--model deepdive-resnet] [--data ../shared/data/watkins] [--reuse]
        [--recorder 0.5 --noise ../shared/data/rightwhalecalls] [--centred-only] [--outliers DIR]
        [--only systems|encounters [--folds 0,2,4]]   # a part, e.g. in two processes side by side; a last run
                                                      # without --folds reads the saved folds and prints that
                                                      # part's table, one without either prints both
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def topk(probs: dict[str, list[float]], truth: dict[str, int], keys: list[str]) -> tuple[float, float]:
    hits1 = [int(np.argmax(probs[k]) == truth[k]) for k in keys]
    hits3 = [int(truth[k] in np.argsort(probs[k])[::-1][:3]) for k in keys]
    return float(np.mean(hits1)), float(np.mean(hits3))


def main() -> int:
    from _recipe import add_flags, train_config

    from deepdive.crossval import crossval_species, gear_folds
    from deepdive.datasets import load_dataset
    from deepdive.datasets.watkins import recording_system
    from deepdive.features import MelConfig
    from deepdive.prepare import PrepareConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "watkins"))
    ap.add_argument("--model", default="deepdive-resnet")
    ap.add_argument("--out", default=str(ROOT / "runs" / "leave-gear-out"))
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--only", choices=["systems", "encounters"],
                    help="run one of the two cross-validations and stop (two processes can share the cores)")
    ap.add_argument("--folds", default="", help="with --only: train only these folds (e.g. 1,3,5,7), the others "
                    "being another process's; the last run, without it, reads them all")
    ap.add_argument("--calls", default="", help="a challenge folder whose up-calls every fold also trains on as "
                    "Northern Right Whales from another recorder (`prepare watkins --calls`); never tested")
    ap.add_argument("--calls-max", type=int, default=60, help="with --calls: how many up-calls (as `prepare --calls-max`)")
    ap.add_argument("--keep-models", action="store_true",
                    help="keep each fold's store and model (work-*/foldI) to study them after; else removed")
    add_flags(ap)
    args = ap.parse_args()
    only = {int(f) for f in args.folds.split(",")} if args.folds else None
    if only is not None and not args.only:
        ap.error("--folds needs --only (a run that prints reads every fold)")
    recs = load_dataset("watkins", args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prep = PrepareConfig(features=MelConfig(), pad="zeros", balance=True, seed=0)  # as `deepdive prepare watkins`
    tcfg, tag = train_config(args.model, args)
    extra = {}
    if args.calls:
        from deepdive.datasets import as_sources, load_calls

        calls = load_calls(args.calls, "Northern Right Whale", next(r.scientific_name for r in recs
                                                                   if r.label == "Northern Right Whale"),
                           args.calls_max, seed=0)
        extra = {"extra_train": as_sources([(args.calls, calls)])}
        tag += f"-calls{args.calls_max}"
    systems, assignments, levels = gear_folds(recs, lambda r: recording_system(r.gear))

    def run(name, **kw):
        path = out / f"{tag}-{name}.json"
        if args.reuse and path.is_file():
            return json.loads(path.read_text())
        cv = crossval_species(recs, out / f"work-{tag}-{name}", prep, tcfg, resume=True, novelty=True, only=only,
                              keep_models=args.keep_models, **extra,
                              progress=lambda i, k, f: print(f"  {name} fold {i}/{k}: {f}", file=sys.stderr, flush=True), **kw)
        if only is None:  # a share of the folds is no result
            path.write_text(json.dumps(cv))
        return cv

    if args.only == "encounters":
        enc = run("encounters", k=5)
        if only is None:  # every fold is there: what the README's encounter table gives
            encounter_table(tag, enc, recs, [k for a in assignments for k, split in a.items() if split == "test"])
        return 0
    logo = run("systems", folds=(assignments, levels))
    if args.only == "systems":
        if only is None:  # every system's fold is there: its table alone (the encounter columns need the other run)
            systems_table(tag, logo, None, recs, systems, assignments)
        return 0
    systems_table(tag, logo, run("encounters", k=5), recs, systems, assignments)
    return 0


def systems_table(tag: str, logo: dict, enc: dict | None, recs, systems, assignments) -> None:
    """Leave one recording system out: top-1 / top-3 over the cuts its folds score, per system and per
    species, beside the same cuts scored by the encounter cross-validation (`enc`; None: without it)."""
    from deepdive.datasets.watkins import recording_system

    labels = logo["labels"]
    truth = {r.key: labels.index(r.label) for r in recs if r.label in labels}
    tested = [k for a in assignments for k, split in a.items() if split == "test"]
    system_of = {r.key: recording_system(r.gear) for r in recs}
    species_of = {r.key: r.label for r in recs}
    lp = logo["recording_probabilities"]
    ep = enc["recording_probabilities"] if enc is not None else {}
    tested = [k for k in tested if k in lp and (enc is None or k in ep)]
    l1, l3 = topk(lp, truth, tested)
    print(f"`{tag}`, {len(tested)} cuts of {len(systems)} recording systems, each scored by a model that never "
          "heard its system" + (" (and, beside it, by one that never heard its encounter)" if enc else "") + "\n")
    print("| scored by a model that never heard | top-1 | top-3 |")
    print("|---|---:|---:|")
    print(f"| the cut's recording system | {l1:.3f} | {l3:.3f} |")
    if enc is not None:
        e1, e3 = topk(ep, truth, tested)
        print(f"| the cut's encounter | {e1:.3f} | {e3:.3f} |")
        print(f"\nGap (encounters - systems): top-1 {e1 - l1:+.3f}, top-3 {e3 - l3:+.3f}")
    both = enc is not None
    print("\n| recording system held out | cuts | species | top-1 (system held out) |" + (" top-1 (encounter held out) |" if both else ""))
    print("|---|---:|---|---:|" + ("---:|" if both else ""))
    for s in systems:
        keys = [k for k in tested if system_of[k] == s]
        if keys:
            names = ", ".join(sorted({species_of[k] for k in keys}))
            print(f"| {s} | {len(keys)} | {names} | {topk(lp, truth, keys)[0]:.2f} |"
                  + (f" {topk(ep, truth, keys)[0]:.2f} |" if both else ""))
    print("\n| species | cuts | top-1 (system held out) | top-3 |" + (" top-1 (encounter held out) |" if both else ""))
    print("|---|---:|---:|---:|" + ("---:|" if both else ""))
    for lab in sorted({species_of[k] for k in tested}):
        keys = [k for k in tested if species_of[k] == lab]
        t1, t3 = topk(lp, truth, keys)
        print(f"| {lab} | {len(keys)} | {t1:.2f} | {t3:.2f} |" + (f" {topk(ep, truth, keys)[0]:.2f} |" if both else ""))
    novelty_table(tested, logo.get("novelty", {}), enc.get("novelty", {}) if both else None, system_of)


def encounter_table(tag: str, enc: dict, recs, system_cuts: list[str]) -> None:
    """The encounter cross-validation alone: top-1 / top-3 over every cut, over the species held out by
    encounter, over the cuts the systems' folds score, per fold and per species; "none of these" at
    the bundle's threshold."""
    from deepdive.bundle import resolve

    labels, probs = enc["labels"], enc["recording_probabilities"]
    truth = {r.key: labels.index(r.label) for r in recs if r.label in labels}
    species_of = {r.key: r.label for r in recs}
    keys = [k for k in truth if k in probs]
    by_encounter = [k for k in keys if species_of[k] in set(enc["encounter_disjoint_labels"])]
    systems = [k for k in system_cuts if k in probs]
    r = enc["recording"]
    print(f"`{tag}`, encounter cross-validation ({enc['k']} folds): every cut scored by a model that never heard its "
          "encounter (or tape, or block)\n")
    print("| cuts | n | top-1 | top-3 |")
    print("|---|---:|---:|---:|")
    for name, ks in (("all", keys), ("species held out by encounter", by_encounter), ("the systems' folds' cuts", systems)):
        t1, t3 = topk(probs, truth, ks)
        print(f"| {name} | {len(ks)} | {t1:.3f} | {t3:.3f} |")
    print(f"\nTop-1 per fold {enc['fold_accuracy_mean']:.3f} ± {enc['fold_accuracy_std']:.3f}; recording ECE "
          f"{r.get('ece', float('nan')):.3f}; macro-F1 {r.get('macro_f1', float('nan')):.3f}\n")
    print("| species | cuts | top-1 | top-3 |")
    print("|---|---:|---:|---:|")
    for lab in labels:
        ks = [k for k in keys if species_of[k] == lab]
        if ks:
            t1, t3 = topk(probs, truth, ks)
            print(f"| {lab} | {len(ks)} | {t1:.2f} | {t3:.2f} |")
    novelty = enc.get("novelty", {})
    known = [k for k in keys if k in novelty]
    if known:
        card = resolve(None, "species").novelty.threshold
        print(f"\nKnown cuts flagged \"none of these\" at {card:g} (the bundle's threshold), each fold's own novelty fit: "
              f"{np.mean([novelty[k] > card for k in known]):.2f} of {len(known)}")


def novelty_table(keys, logo, enc, system_of) -> None:
    """"None of these" out of fold: known-species recordings flagged at the default threshold, and the
    threshold cross-validation would choose (the one keeping 90% / 95% of them known); `enc` None: the
    systems' folds alone."""
    from deepdive.bundle import resolve
    from deepdive.novelty import DEFAULT_KEEP, threshold_for

    keys = [k for k in keys if k in logo and (enc is None or k in enc)]
    if not keys:
        return
    card = resolve(None, "species").novelty.threshold  # the bundled model's threshold
    print(f"\n\"None of these\" out of fold ({len(keys)} known-species cuts; each model's novelty fit on its own "
          "training and validation windows)\n")
    print(f"| scored by a model that never heard | flagged at {DEFAULT_KEEP:g} | at {card:g} (the bundle's) | median "
          "novelty | threshold keeping 90% known | 95% |")
    print("|---|---:|---:|---:|---:|---:|")
    runs = (("the cut's recording system", logo),) + ((("the cut's encounter", enc),) if enc is not None else ())
    for name, nov in runs:
        v = np.array([nov[k] for k in keys])
        print(f"| {name} | {np.mean(v > DEFAULT_KEEP):.2f} | {np.mean(v > card):.2f} | {np.median(v):.2f} | "
              f"{threshold_for(v, 0.90):.3f} | {threshold_for(v, 0.95):.3f} |")
    print("\n| recording system held out | cuts | " + " | ".join(f"flagged at {card:g} ({name.split()[-1]} held out)"
                                                                 for name, _ in runs) + " |")
    print("|---|---:|" + "---:|" * len(runs))
    for s in sorted({system_of[k] for k in keys}):
        ks = [k for k in keys if system_of[k] == s]
        print(f"| {s} | {len(ks)} | " + " | ".join(f"{np.mean([nov[k] > card for k in ks]):.2f}" for _, nov in runs) + " |")


if __name__ == "__main__":
    sys.exit(main())
