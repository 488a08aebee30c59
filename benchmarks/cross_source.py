"""Does a right-whale detector hear the call, or the recorder? Trained on the challenge's own buoy
clips (../shared/data/rightwhalecalls, Cornell's buoys in Massachusetts Bay), on clips cut from
Watkins tapes (../shared/data/rightwhale2k), or on both, and tested on each, never on a clip or tape
that its model heard.

- Within each source, 5-fold cross-validation: buoy clips by clip (identical clips kept together: no
  metadata says which clips were recorded close together, so this is as honest as the clips are
  independent, as every published figure on this data), Watkins clips by tape (the folds of
  `compare_detectors.py --cv`). A model trained on both sources holds out fold i of each at once.
- The cross-source matrix: trained on buoys only / tapes only / both, tested on each. A source that a
  model never trained on is scored whole by each of the five fold models: mean ± sd of their AUCs.
- ROC AUC and average precision, and accuracy/precision/recall/F1 at a threshold (`--threshold`,
  default the bundled detector's own, since the fold models are trained by its recipe); white noise
  at 20, 10, 5 and 0 dB SNR on the pooled out-of-fold clips.
- Tape by tape, for a run that holds tapes out: the species each tape holds (Watkins metadata), its
  clips' median score and the AUC of its clips against every tape clip of the other label: which
  species' calls the detector takes for a right whale's.
- `--fixed`: the bundled detector (or `--model DIR`) on the fixed test split of its card, per
  source, clean and with noise: what `make detector` reports.

    .venv/bin/python benchmarks/cross_source.py [--train buoys tapes both] [--recipe cnn] [--reuse] [--fixed]
        [--seed 1] [--device cuda] [--folds 2,3 [--data DIR]]   # some folds elsewhere (a GPU machine); a last run reads them

A fold's saved result is stamped with its clips' paths, so folds trained on another machine are read
back only if the data lay at the same path there (`--data`); `--seed N` runs go to RECIPE-TRAIN-sN.

Every run's out-of-fold probabilities go to runs/cross-source/RECIPE-TRAIN.json (`--reuse` reads them
instead of training again; a run that was stopped goes on from its last finished fold, saved as
work-RECIPE-TRAIN/foldI.json) and the tables are printed in Markdown. One model trained on the buoy clips
takes about 10 to 25 minutes on 2 cores (the recipe's epochs), so the whole matrix takes hours.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUOYS, TAPES = SHARED / "rightwhalecalls", SHARED / "rightwhale2k"
WATKINS = SHARED / "watkins"
NEGATIVES = "watkins"  # the source name of the `-negs` recipes' extra negatives (`watkins.detection_negatives`)
SOURCES = {"buoys": BUOYS.name, "tapes": TAPES.name}


PASSES = {BUOYS.name: 2, TAPES.name: 12}


def recipes():
    """(prepare config, train config) of each recipe, by name; `cnn-mix` is what `make detector` runs.

    Both train the compact CNN for 8 epochs over every buoy clip twice (once as it is, once shifted
    with noise and gain) and every Watkins clip 12 times (the 224 clips would otherwise be 3% of what
    the model hears); `cnn-mix` mixes half of the augmented passes over another source's noise clip.
    The `-500` recipes keep only the bins up to 500 Hz (the up-call sweeps from about 50 to 250 Hz; the
    challenge's entrants cropped their spectrograms to such a band): half the rows, about half the work.
    The `-pcen` recipes add per-channel energy normalisation as a channel (0.5 s time constant); the
    `-centred` ones drop the absolute-level channel (`train --centred-only`: only each band less its mean
    over the window, which a recorder's per-band response cannot reach), as the species model does; `-pitch`
    scales each training window's frequency axis by up to 20% (`train --pitch 0.2`); `-rec` hears half the
    training windows through a random recorder (`train --recorder 0.5`: `augment.recorder_response`'s
    noise under the call, hum lines and band limits; its equalisation curve the centring cancels); `-rec-nb`
    the same without the band limits (`--no-recorder-bands`), which can cut a call off. The `-negs` recipes
    also train on up to three 2 s windows of every Watkins cut of the other 19 species (825 windows in the
    folder of 2026-12-02: humpback, bowhead, fin and pilot whales, dolphins...; `watkins.detection_negatives`),
    four passes each, a fold leaving out those of every encounter it tests (`crossval_detector(extra_train=...)`);
    `-negs-nomix` mixes the folders' calls only over each other's noise, as before, never over those windows."""
    from deepdive.datasets.kaggle import POSITIVE
    from deepdive.features import StftImageConfig
    from deepdive.prepare import PrepareConfig
    from deepdive.train import TrainConfig

    prep = PrepareConfig(features=StftImageConfig(), task="detection", positive=POSITIVE, min_last_s=1.0, pad="mirror",
                         shift="roll", augment_all=True, val_frac=0.0, source_passes=dict(PASSES))
    cnn = TrainConfig(model="detector-cnn", epochs=8, patience=8)
    low = replace(prep, features=StftImageConfig(fmax=500.0))
    negs = replace(low, source_passes={**PASSES, NEGATIVES: 4})  # `-negs`: other species' Watkins cuts as negatives
    # the `-pcen` recipes add a PCEN channel (`train --pcen 0.5`: each bin over its running mean of 0.5 s)
    pcen = replace(cnn, model_options={"pcen": low.features.columns(0.5)})
    centred = replace(cnn, model_options={"level": False})  # the `-centred` recipes: `train --centred-only`
    pitched = replace(centred, pitch=0.2)  # `-pitch`: and `train --pitch 0.2`, each window's call up to 20% higher or lower
    heard = replace(centred, recorder=0.5)  # `-rec`: and `train --recorder 0.5`, half the windows through a random recorder
    heard_all_bands = replace(heard, recorder_bands=False)  # `-rec-nb`: the same, `--no-recorder-bands`
    return {
        "cnn": (prep, cnn),
        "cnn-mix": (replace(prep, mix_backgrounds=0.5), cnn),
        "cnn-500": (low, cnn),
        "cnn-mix-500": (replace(low, mix_backgrounds=0.5), cnn),
        "cnn-500-pcen": (low, pcen),
        "cnn-mix-500-pcen": (replace(low, mix_backgrounds=0.5), pcen),
        "cnn-500-centred": (low, centred),
        "cnn-mix-500-centred": (replace(low, mix_backgrounds=0.5), centred),
        "cnn-500-centred-pitch": (low, pitched),
        "cnn-mix-500-centred-pitch": (replace(low, mix_backgrounds=0.5), pitched),
        "cnn-mix-500-centred-rec": (replace(low, mix_backgrounds=0.5), heard),
        "cnn-mix-500-centred-rec-nb": (replace(low, mix_backgrounds=0.5), heard_all_bands),
        "cnn-500-centred-negs": (negs, centred),
        "cnn-mix-500-centred-negs": (replace(negs, mix_backgrounds=0.5), centred),
        # the same, each folder's calls still mixed only over the other folder's noise, never over the extra negatives
        "cnn-mix-500-centred-negs-nomix": (replace(negs, mix_backgrounds=0.5, mix_sources=(BUOYS.name, TAPES.name)), centred),
    }


def load(which: str):
    from deepdive.datasets import load_datasets

    paths = {"buoys": [BUOYS], "tapes": [TAPES], "both": [BUOYS, TAPES]}[which]
    return load_datasets("kaggle", [str(p) for p in paths])


def run_matrix_row(train_on: str, recipe: str, out: Path, reuse: bool, device: str = "cpu",
                   only: set[int] | None = None, seed: int = 0) -> dict | None:
    """Cross-validation of `recipe` trained on `train_on`; the other source (if any) scored whole.
    `only`: train these folds alone and save them (None returned): a last run without it reads them.
    `seed`: the networks' seed (the folds stay those of seed 0), for the spread over seeds."""
    from deepdive.crossval import crossval_detector
    from deepdive.datasets import load_datasets

    prep, tcfg = recipes()[recipe]
    if train_on != "both" and prep.mix_backgrounds > 0:
        # mixing needs another source's noise: trained on one source, the recipe is its unmixed base
        recipe = next(name for name, (p, t) in recipes().items()
                      if t == tcfg and p == replace(prep, mix_backgrounds=0.0, mix_sources=()))
        prep = replace(prep, mix_backgrounds=0.0, mix_sources=())
    tag = f"{recipe}-{train_on}" + (f"-s{seed}" if seed else "")
    path = out / f"{tag}.json"
    if reuse and path.is_file():
        return json.loads(path.read_text())
    recs = load(train_on)
    extra, encounters = [], None
    if NEGATIVES in prep.source_passes and train_on != "buoys":
        from deepdive.datasets.watkins import detection_negatives, load_watkins, tape_encounters

        watkins = load_watkins(WATKINS)
        extra, encounters = detection_negatives(watkins), tape_encounters(watkins)
    present = {r.source for r in recs + extra}
    prep = replace(prep, source_passes={k: v for k, v in prep.source_passes.items() if k in present})
    tcfg = replace(tcfg, device=device)
    if train_on == "both":
        other = []
    else:
        other_dir = TAPES if train_on == "buoys" else BUOYS
        other = load_datasets("kaggle", [str(other_dir)])
    # with both sources, every recording's group is prefixed by its folder: folds within each source
    # are then those the source gets alone (group_folds deals each source on its own)
    result = crossval_detector(recs, out / f"work-{tag}", prep, tcfg, k=5, seed=0, resume=True,
                               also_score=other, only=only, train_seed=seed or None,
                               extra_train=extra or None, encounter_of_tape=encounters,
                               progress=lambda i, k, f: print(f"  {recipe}/{train_on}: fold {i}/{k} AUC {f['roc_auc']}"
                                                              + (f", other source {f['also_roc_auc']}" if "also_roc_auc" in f else ""),
                                                              file=sys.stderr))
    if only is not None:
        return None
    result["recipe"] = recipe
    result["train_on"] = train_on
    path.write_text(json.dumps(result))
    return result


def source_of_clip(key: str) -> str:
    return "buoys" if f"/{SOURCES['buoys']}/" in key else "tapes"


def cell(result: dict, test_on: str, threshold: float) -> dict:
    """Figures of one (trained on, tested on) cell from a cross-validation result."""
    from deepdive.evaluate import detection_metrics

    if result["train_on"] in ("both", test_on):
        keys = result["clips"]
        mine = np.array([source_of_clip(k) == test_on for k in keys])
        y = np.array(result["truth"])[mine]
        conds = {c: detection_metrics(y, np.array(p)[mine], threshold) for c, p in result["probabilities"].items()}
        name = SOURCES[test_on]
        fold_aucs = [f.get("roc_auc_by_source", {}).get(name, f["roc_auc"]) for f in result["folds"]]
        return {"kind": "out of fold", "n": int(mine.sum()), "conditions": conds,
                "fold_auc_mean": float(np.mean(fold_aucs)), "fold_auc_std": float(np.std(fold_aucs))}
    also = result["also"]
    y = np.array(also["truth"])
    aucs = [detection_metrics(y, np.array(p), threshold)["roc_auc"] for p in also["probabilities"]]
    mean = detection_metrics(y, np.mean(also["probabilities"], axis=0), threshold)
    each = [detection_metrics(y, np.array(p), threshold) for p in also["probabilities"]]
    return {"kind": "never heard (each fold model)", "n": len(y), "conditions": {"clean": mean},
            "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
            "precision_mean": float(np.mean([e["precision"] for e in each])),
            "recall_mean": float(np.mean([e["recall"] for e in each]))}


def fixed_split(model) -> dict:
    """The bundle on the test split of its card, per source."""
    from deepdive.bundle import resolve
    from deepdive.datasets import load_datasets
    from deepdive.evaluate import evaluate_detection
    from deepdive.prepare import split_by_encounter

    bundle = resolve(model, "detection")
    prep = bundle.card["prepare"]
    sources = [r["source"] for r in bundle.card["split"]["report"] if r.get("source")] or [TAPES.name]
    dirs = [SHARED / s for s in dict.fromkeys(sources)]
    recs = load_datasets("kaggle", [str(d) for d in dirs])
    assign, _ = split_by_encounter(recs, prep["val_frac"], prep["test_frac"], prep["seed"], prep["fallback_split"])
    out = {}
    for d in dirs:
        test = [(r.key, int(r.label == bundle.positive_label)) for r in recs
                if assign[r.key] == "test" and (r.source == d.name or len(dirs) == 1)]
        out[d.name] = evaluate_detection(bundle, test)["conditions"]
    return {"threshold": bundle.threshold, "by_source": out}


def per_tape(result: dict, threshold: float) -> list[dict]:
    """The tape clips of an out-of-fold run, tape by tape: what species the tape holds (the Watkins
    metadata, where ../shared/data/watkins is there), its clips' label, how many, their median score,
    the share at or over `threshold`, and the AUC of its clips against every tape clip of the other
    label (how well this tape's calls stand out from the noise of all tapes, or this tape's noise sinks
    below all their calls)."""
    import csv

    from deepdive.evaluate import detection_metrics

    tape_of = {r["clip_name"]: r["tape"] for r in csv.DictReader((TAPES / "sources.csv").open())}
    species: dict[str, set] = {}
    meta = SHARED / "watkins" / "metadata.csv"
    if meta.is_file():
        for r in csv.DictReader(meta.open()):
            species.setdefault(str(r.get("tape", "")), set()).add(r.get("species", ""))
    probs = np.array(result["probabilities"]["clean"])
    truth = np.array(result["truth"])
    tapes = np.array([tape_of.get(Path(k).name, "?") if source_of_clip(k) == "tapes" else "" for k in result["clips"]])
    mine = tapes != ""
    rows = []
    for tape in sorted(set(tapes[mine])):
        at = mine & (tapes == tape)
        label = int(truth[at][0])
        other = mine & (truth != label)
        y = np.concatenate([truth[at], truth[other]])
        auc = detection_metrics(y, np.concatenate([probs[at], probs[other]]), threshold)["roc_auc"]
        rows.append({"tape": tape, "species": ", ".join(sorted(species.get(tape, []))) or "?",
                     "label": "call" if label else "noise", "clips": int(at.sum()),
                     "median": float(np.median(probs[at])), "over": float(np.mean(probs[at] >= threshold)),
                     "auc_against_other_label": auc})
    return rows


def fmt(c: dict) -> str:
    return (f"{c['roc_auc']:.3f} | {c['average_precision']:.3f} | {c['accuracy']:.3f} | {c['precision']:.2f} | "
            f"{c['recall']:.2f} | {c['f1']:.2f}")


def main() -> int:
    global BUOYS, TAPES
    from deepdive.bundle import resolve

    ap = argparse.ArgumentParser()
    ap.add_argument("--train", nargs="*", default=["buoys", "tapes", "both"], choices=["buoys", "tapes", "both"])
    ap.add_argument("--recipe", default="cnn-mix", choices=sorted(recipes()))
    ap.add_argument("--out", default=str(ROOT / "runs" / "cross-source"))
    ap.add_argument("--reuse", action="store_true", help="read cross-validation runs already in --out")
    ap.add_argument("--threshold", type=float, default=None, help="default: the bundled detector's")
    ap.add_argument("--fixed", action="store_true", help="also the bundle on its card's fixed test split")
    ap.add_argument("--model", default=None, help="with --fixed: a bundle folder (default: the bundled detector)")
    ap.add_argument("--data", default=None, help=f"the folder holding {BUOYS.name}/ and {TAPES.name}/ (default: {SHARED})")
    ap.add_argument("--device", default="cpu", help="where the networks train: cpu, or cuda")
    ap.add_argument("--seed", type=int, default=0, help="the networks' seed (the folds stay the same)")
    ap.add_argument("--folds", default="", help="train only these folds (e.g. 2,3) and stop, as one of several "
                    "processes or machines; a last run without it reads every saved fold and prints")
    args = ap.parse_args()
    if args.data:
        BUOYS, TAPES = Path(args.data) / BUOYS.name, Path(args.data) / TAPES.name
    if not (BUOYS / "train.csv").is_file() or not (TAPES / "train.csv").is_file():
        print(f"needs {BUOYS} and {TAPES}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threshold = args.threshold if args.threshold is not None else resolve(None, "detection").threshold
    only = {int(f) for f in args.folds.split(",")} if args.folds else None
    results = {t: run_matrix_row(t, args.recipe, out, args.reuse, args.device, only, args.seed) for t in args.train}
    if only is not None:
        print(f"folds {sorted(only)} saved under {out}; run again without --folds for the tables")
        return 0

    print(f"\nRecipe `{args.recipe}`" + (f", seed {args.seed}" if args.seed else "") + f"; precision, recall and F1 at threshold {threshold:g}.\n")
    print("| trained on | tested on | clips | how | ROC AUC | AP | accuracy | precision | recall | F1 |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for t, res in results.items():
        for test_on in ("buoys", "tapes"):
            c = cell(res, test_on, threshold)
            how = c["kind"]
            if "fold_auc_mean" in c:
                how += f": folds {c['fold_auc_mean']:.3f} ± {c['fold_auc_std']:.3f}"
            if "auc_mean" in c:
                how += f": AUC {c['auc_mean']:.3f} ± {c['auc_std']:.3f}; row: their mean probability"
            print(f"| {t} | {test_on} | {c['n']} | {how} | {fmt(c['conditions']['clean'])} |")
    print("\nNoise (white, relative to each clip's power), pooled out of fold:\n")
    print("| trained on | tested on | clean | 20 dB | 10 dB | 5 dB | 0 dB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for t, res in results.items():
        for test_on in ("buoys", "tapes"):
            c = cell(res, test_on, threshold)
            if len(c["conditions"]) > 1:
                print(f"| {t} | {test_on} | " + " | ".join(f"{v['roc_auc']:.3f}" for v in c["conditions"].values()) + " |")
    for t, res in results.items():
        if res["train_on"] in ("both", "tapes"):
            print(f"\nTrained on {t}, the tape clips out of fold, tape by tape (species: the Watkins metadata; "
                  f"AUC: the tape's clips against every tape clip of the other label):\n")
            print(f"| tape | species | clips of | clips | median score | at or over {threshold:g} | AUC |")
            print("|---|---|---|---:|---:|---:|---:|")
            for r in sorted(per_tape(res, threshold), key=lambda r: (r["label"], r["auc_against_other_label"])):
                print(f"| {r['tape']} | {r['species']} | {r['label']} | {r['clips']} | {r['median']:.2f} | "
                      f"{r['over']:.2f} | {r['auc_against_other_label']:.2f} |")
    (out / f"{args.recipe}{f'-s{args.seed}' if args.seed else ''}-summary.json").write_text(json.dumps(
        {t: {s: cell(r, s, threshold) for s in ("buoys", "tapes")} for t, r in results.items()}, indent=1))
    if args.fixed:
        fixed = fixed_split(args.model)
        print(f"\nFixed test split of the card, threshold {fixed['threshold']:g}:\n")
        print("| tested on | condition | ROC AUC | AP | accuracy | precision | recall | F1 |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for src, conds in fixed["by_source"].items():
            for cond, c in conds.items():
                print(f"| {src} | {cond} | {fmt(c)} |")
        (out / "fixed.json").write_text(json.dumps(fixed, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
