"""The training-recipe flags the species benchmarks share: what `deepdive train` offers against
learning the recorder (--recorder, --noise, --centred-only) or naming noise (--outliers), turned into
a TrainConfig and a tag that names the runs' files."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--recorder", type=float, default=0.0, help="train --recorder: random recorder augmentation")
    ap.add_argument("--noise", default="", help="train --noise: background recordings for --recorder")
    ap.add_argument("--centred-only", action="store_true", help="train --centred-only (level=False)")
    ap.add_argument("--outliers", default="", help="train --outliers: outlier exposure to these recordings")
    ap.add_argument("--synthetic-outliers", type=int, default=0, help="train --synthetic-outliers N")
    ap.add_argument("--freq-mixstyle", type=float, default=0.0, help="train --freq-mixstyle P: frequency-wise MixStyle")
    ap.add_argument("--pcen", type=float, default=0.0, help="train --pcen SECONDS: a PCEN channel (mel frames of 16 ms)")
    ap.add_argument("--train-seed", type=int, default=0,
                    help="train --seed: the models' seed (a cross-validation's fold i trains with seed + i)")


def train_config(model: str, args: argparse.Namespace):
    """(TrainConfig, tag) for `model` with the flags of `add_flags`."""
    from deepdive.features.spectrogram import MelConfig
    from deepdive.train import TrainConfig

    options: dict = {"level": False} if args.centred_only else {}
    if args.pcen:  # the species benchmarks prepare the Watkins cuts with the default mel features
        options["pcen"] = MelConfig().columns(args.pcen)
    cfg = TrainConfig(model=model, recorder=args.recorder, noise=args.noise, outliers=args.outliers,
                      synthetic_outliers=args.synthetic_outliers, model_options=options,
                      freq_mixstyle=args.freq_mixstyle, seed=args.train_seed)
    tag = (model + (f"-rec{args.recorder:g}" if args.recorder else "") + ("-noise" if args.noise else "")
           + ("-centred" if args.centred_only else "") + ("-oe" if args.outliers else "") + (f"-syn{args.synthetic_outliers}" if args.synthetic_outliers else "")
           + (f"-pcen{args.pcen:g}" if args.pcen else "") + (f"-fms{args.freq_mixstyle:g}" if args.freq_mixstyle else "")
           + (f"-seed{args.train_seed}" if args.train_seed else ""))
    return cfg, tag


def trained_on_noise(bundle) -> set[str]:
    """The names of the noise recordings the model's training heard (under its windows, `--noise`, or
    as outliers, `--outliers`): the benchmark's buoy noise leaves them out."""
    from deepdive.augment import noise_paths

    training = bundle.card.get("training", {})
    heard: set[str] = set()
    for key in ("noise", "outliers"):
        if training.get(key):
            heard |= {Path(p).name for p in noise_paths(training[key], seed=training.get("seed", 0))}
    return heard


def trained_on_clips(bundle) -> set[str]:
    """The names of the challenge clips the model trained on as recordings of a species (`prepare watkins
    --calls`: their units in the card's training and validation splits): the benchmarks leave them out."""
    heard: set[str] = set()
    for row in bundle.card.get("split", {}).get("report", []):
        for split in ("train", "val"):
            units = row.get(f"{split}_units", [])
            if isinstance(units, dict):  # a split too large to list: its count and digest only
                raise SystemExit(f"{bundle.path}: the card lists {units['count']} {split} units by digest only; "
                                 "the clips it heard cannot be left out")
            heard |= {u.split("clip:", 1)[1] for u in units if "clip:" in u}
    return heard
