"""Listening to recordings: `classify` ranks species, `detect` scores right-whale clips."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DeepdiveError
from .common import RECALL_HELP, Format, app, check, check_threshold, each_file, fail, finite, rich_console

PANEL = "Listen to recordings"


@app.command(rich_help_panel=PANEL)
def classify(
    files: Annotated[list[Path], typer.Argument(help="Recordings (wav, aiff, flac, ...)")],
    model: Annotated[Path | None, typer.Option(
        help="Model bundle folder, or species-birdnet (needs BirdNET, see the README); default: the bundled species model")] = None,
    top: Annotated[int | None, typer.Option(help="Show only the K most probable species")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="Show only species with at least this probability (0 to 1)")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
) -> None:
    """Rank every species the model knows for each FILE, most to least probable."""
    from ..bundle import resolve
    from ..outputs import rankings_csv, rankings_json, rankings_table
    from ..predict import classify as rank

    try:
        check(top is None or top >= 1, f"--top {top}: give how many species to show, 1 or more")
        check(min_confidence is None or (finite(min_confidence) and 0 <= min_confidence <= 1),
               f"--min-confidence {min_confidence}: give a probability from 0 to 1")
        bundle = resolve(model, "species")
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    results, failed = each_file(
        files, lambda f: rank(f, model=bundle, top=top, min_confidence=min_confidence).as_dict(), "ranking", 3)
    if format is Format.json:
        print(rankings_json(results))
    elif format is Format.csv:
        sys.stdout.write(rankings_csv(results))
    else:
        rankings_table(results, rich_console(), min_confidence)
    if failed:
        raise typer.Exit(1)


@app.command(rich_help_panel=PANEL)
def detect(
    files: Annotated[list[Path], typer.Argument(help="Clips or recordings; a folder means its clips (the challenge's test/)")],
    model: Annotated[Path | None, typer.Option(help="Detector bundle folder; default: the bundled right-whale detector")] = None,
    threshold: Annotated[float | None, typer.Option(help="Call when probability >= T; default: the model's")] = None,
    recall: Annotated[float | None, typer.Option(help=RECALL_HELP)] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
    submission: Annotated[Path | None, typer.Option(help="Also write the challenge's submission CSV (clip,probability)")] = None,
) -> None:
    """Probability that a right whale calls in each FILE (in its likeliest window, for a long file)."""
    from ..bundle import resolve
    from ..datasets.kaggle import list_test_clips
    from ..outputs import detections_csv, detections_json, detections_table, submission_csv
    from ..predict import detect as detect_one

    try:
        check_threshold(threshold)
        bundle = resolve(model, "detection")
        t = bundle.pick_threshold(threshold, recall)
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    paths: list[Path] = []
    bad_folders = False
    for f in files:  # a folder with no clips is reported, and the other arguments still run
        try:
            paths += list_test_clips(f) if f.is_dir() else [f]
        except (DeepdiveError, OSError) as exc:
            bad_folders = True
            fail(str(exc) if isinstance(exc, DeepdiveError) else f"{f}: {exc.strerror}")

    def one(f: Path) -> dict:
        p = detect_one(f, model=bundle)
        return {"probability": round(p, 6), "detected": p >= t}

    results, failed = each_file(paths, one, "detecting", 20)
    failed = failed or bad_folders
    if submission is not None:
        from ..store import atomic_write_text

        try:
            atomic_write_text(submission, submission_csv([(Path(r["file"]).name, r["probability"]) for r in results
                                                          if "error" not in r]))
        except OSError as exc:
            fail(f"{submission}: cannot write the submission ({exc.strerror}); choose another --submission path")
            raise typer.Exit(1) from None
    if format is Format.json:
        print(detections_json(results))
    elif format is Format.csv:
        sys.stdout.write(detections_csv(results))
    else:
        detections_table(results, rich_console(), t)
        if submission is not None:
            print(f"submission: {submission}")
    if failed:
        raise typer.Exit(1)
