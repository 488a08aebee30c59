"""The `deepdive` command line. Errors a user can cause print one line `error: ...` and exit 1."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .errors import DeepdiveError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Marine-mammal bioacoustics: rank species in recordings, train and evaluate models.")
data_app = typer.Typer(no_args_is_help=True, help="Get training data.")
app.add_typer(data_app, name="data")


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


@app.command()
def classify(
    files: Annotated[list[Path], typer.Argument(help="Recordings (wav, aiff, flac, ...)")],
    model: Annotated[Path | None, typer.Option(help="Model bundle folder; default: the bundled species model")] = None,
    top: Annotated[int | None, typer.Option(help="Show only the K most probable species")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
) -> None:
    """Rank every species the model knows for each FILE, most to least probable."""
    from .bundle import resolve
    from .outputs import rankings_csv, rankings_json, rankings_table
    from .predict import classify as rank

    try:
        bundle = resolve(model, "species")
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    from rich.progress import Progress

    results, failed = [], False
    # progress on stderr, only for several files: stdout stays clean for JSON and CSV
    with Progress(console=_console(stderr=True), transient=True, disable=len(files) < 3) as bar:
        task = bar.add_task("ranking", total=len(files))
        for f in files:
            try:
                results.append({"file": str(f), "ranking": rank(f, model=bundle, top=top)})
            except DeepdiveError as exc:
                failed = True
                msg = str(exc)
                results.append({"file": str(f), "error": msg})
                _fail(msg if msg.startswith(str(f)) else f"{f}: {msg}")
            bar.advance(task)
    if format is Format.json:
        print(rankings_json(results))
    elif format is Format.csv:
        sys.stdout.write(rankings_csv(results))
    else:
        rankings_table(results, _console())
    if failed:
        raise typer.Exit(1)


@app.command()
def prepare(
    kind: Annotated[Kind, typer.Argument(help="Dataset layout")],
    path: Annotated[Path, typer.Argument(help="Dataset folder (or manifest CSV)")],
    out: Annotated[Path, typer.Option(help="Store folder to write (resumes if it exists)")],
    species: Annotated[list[str] | None, typer.Option(help="Keep only these species (repeat)")] = None,
    family: Annotated[list[str] | None, typer.Option(help="Keep only these families (repeat)")] = None,
    min_duration: Annotated[float, typer.Option(help="Drop recordings shorter than this (s)")] = 0.0,
    clean_only: Annotated[bool, typer.Option(help="Only cuts whose notes name no other source")] = False,
    window: Annotated[float, typer.Option(help="Window length (s)")] = 5.0,
    pad: Annotated[str, typer.Option(help="Padding of short windows: zeros or noise")] = "zeros",
    no_balance: Annotated[bool, typer.Option(help="Do not balance classes")] = False,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Split by encounter, slice, balance, augment and store log-mel features."""
    from dataclasses import replace

    from rich.progress import Progress

    from .datasets import load_dataset, select
    from .features.spectrogram import MelConfig
    from .prepare import PrepareConfig, format_split_report
    from .prepare import prepare as run

    try:
        recs = select(load_dataset(kind.value, str(path)), species, family, min_duration, clean_only)
        cfg = PrepareConfig(mel=replace(MelConfig(), window_s=window), pad=pad, balance=not no_balance, seed=seed)
        source = {"kind": kind.value, "path": str(path)}
        if kind is Kind.watkins:
            from .datasets.watkins import TERMS

            source["terms"] = TERMS
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
    model: Annotated[str, typer.Option(help="deepdive-resnet (default) or deepdive-cnn (Deep Dive's)")] = "deepdive-resnet",
    epochs: Annotated[int, typer.Option()] = 40,
    batch_size: Annotated[int, typer.Option()] = 32,
    lr: Annotated[float, typer.Option()] = 2e-3,
    patience: Annotated[int, typer.Option()] = 8,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train a species model on a prepared store and export model.onnx + card.json."""
    try:
        from .train import TrainConfig
        from .train import train as run
    except ImportError:
        _fail("training needs the [train] extra: pip install 'deepdive[train]' torch==2.13.0")
        raise typer.Exit(1) from None
    try:
        run(store, out, TrainConfig(model=model, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed))
    except DeepdiveError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    print(f"bundle: {out}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model bundle folder")],
    data: Annotated[Path, typer.Argument(help="A prepared store, or a dataset folder (scored whole)")],
    split: Annotated[str, typer.Option(help="Store split to score: test, val, train or all")] = "test",
    kind: Annotated[Kind, typer.Option(help="Layout when DATA is a dataset")] = Kind.watkins,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: MODEL/eval)")] = None,
    update_card: Annotated[bool, typer.Option(help="Write the figures into the bundle's card")] = True,
) -> None:
    """Accuracy, top-3, macro-F1, per-species recall and confusion matrices, per window and per recording."""
    from .evaluate import evaluate_recordings, evaluate_store, markdown_report, summary, write_report

    try:
        if (data / "config.json").is_file():
            report = evaluate_store(model, data, split)
        else:
            from .datasets import load_dataset

            report = evaluate_recordings(model, load_dataset(kind.value, str(data)), on_error=lambda k, m: _fail(m))
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


@data_app.command("watkins")
def data_watkins(
    out: Annotated[Path, typer.Option(help="Folder to download into (resumes)")],
    species: Annotated[list[str] | None, typer.Option(help="Only these species (repeat)")] = None,
    base_url: Annotated[str, typer.Option(help="Site root")] = "https://cis.whoi.edu/science/B/whalesounds/",
) -> None:
    """Download the Watkins 'Best of' cuts and their metadata (non-commercial use, with credit)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from .datasets.watkins_site import download

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task("Watkins best-of cuts", total=None)

            def progress(done_bytes: int, total_bytes: int | None, name: str) -> None:
                bar.update(task, completed=done_bytes, total=total_bytes, description=name[:40])

            result = download(out, base_url=base_url, species=species, progress=progress, on_error=lambda m: _fail(m))
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
    """Write a few synthetic example recordings and rank them with the bundled model."""
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
                  "call; run [bold]deepdive classify YOUR.wav[/bold] on a real recording.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
