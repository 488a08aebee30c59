"""Long recordings: `scan` finds events, `segments` cuts them out for review, `embed` and `search` find more like one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DeepdiveError
from .common import RECALL_HELP, Format, app, check, check_hop, check_threshold, fail, finite, rich_console

PANEL = "Long recordings"


@app.command(rich_help_panel=PANEL)
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
    timestamp_format: Annotated[str | None, typer.Option(
        help="Absolute UTC times too, from the start time in each file name: soundtrap, audiomoth, "
             "YYMMDDhhmmss-style letters or a strftime pattern such as %Y%m%d_%H%M%S")] = None,
) -> None:
    """Slide the model over long recordings and write the events: Raven selection tables, CSV, JSON,
    Parquet. Rerun on the same --out to resume: finished files are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..scanning import scan_files

    try:
        check_hop(hop)
        check_threshold(threshold)
        check(workers >= 1, f"--workers {workers}: give how many processes scan files at once, 1 or more")
        if recall is not None:
            from ..bundle import resolve

            threshold = resolve(model).pick_threshold(threshold, recall)
        with Progress(TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[hours]}"),
                      TimeRemainingColumn(), console=rich_console(stderr=True), transient=True) as bar:
            task = bar.add_task("scan", total=None, hours="")

            def progress(done: int, total: int, seconds: float, within=None) -> None:
                text = f"{seconds / 3600:.2f} h of audio"
                if within and within[1] >= 600:  # a long file: how far into it
                    text += f" (this file: {within[0] / 60:.0f} of {within[1] / 60:.0f} min)"
                bar.update(task, completed=done, total=total, hours=text)

            summary = scan_files(paths, out, model, hop, threshold, [f.strip() for f in format.split(",") if f.strip()],
                                 recursive, progress, workers, dask, timestamp_format)
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    resumed = f" ({summary['resumed_files']} already done)" if summary["resumed_files"] else ""
    speed = f", {summary['times_real_time']}x real time" if summary["times_real_time"] else ""
    print(f"{summary['files']} files{resumed}, {summary['audio_hours']:.2f} h of audio, {summary['events']} events, "
          f"{summary['failed']} failed{speed} -> {out}")
    untimed = summary.get("files_without_timestamp") or []
    if untimed:
        fail(f"{len(untimed)} file(s) without a start time of format {summary['timestamp_format']} in their name "
              f"(no UTC times for their events), e.g. {untimed[0]}")
    if summary["failed"]:
        print(f"failed files: {out / 'errors.csv'}")
        raise typer.Exit(1)


@app.command(rich_help_panel=PANEL)
def embed(
    paths: Annotated[list[Path], typer.Argument(help="Recordings or folders of recordings")],
    out: Annotated[Path, typer.Option(help="The Parquet file to write (one row per window)")],
    model: Annotated[str, typer.Option(help="species (default), rightwhale, species-birdnet, or a bundle folder")] = "species",
    hop: Annotated[float | None, typer.Option(help="Seconds between window starts (default: half a window)")] = None,
    recursive: Annotated[bool, typer.Option(help="Look into subfolders too")] = False,
) -> None:
    """Write the model's embedding of every window (file, start_s, end_s, embedding) for `deepdive search`."""
    from rich.progress import Progress

    from ..bundle import resolve
    from ..embedding import embed_files, write_embeddings
    from ..scanning import find_audio

    failed = False

    def bad(path, message):
        nonlocal failed
        failed = True
        fail(message)

    try:
        check_hop(hop)
        bundle = resolve(model)
        files = find_audio(paths, recursive)
        with Progress(console=rich_console(stderr=True), transient=True) as bar:
            task = bar.add_task("embedding", total=len(files))
            rows = embed_files(files, bundle, hop, on_error=bad, progress=lambda d, t: bar.update(task, completed=d))
        check(bool(rows), "no window was embedded: no readable recording among the PATHs")
        write_embeddings(rows, out, bundle)
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{len(rows)} windows of {len({r['file'] for r in rows})} files, {len(rows[0]['embedding'])} values each -> {out}")
    if failed:
        raise typer.Exit(1)


@app.command(rich_help_panel=PANEL)
def search(
    query: Annotated[Path, typer.Argument(help="A recording of the sound to look for")],
    embeddings: Annotated[Path, typer.Argument(help="A Parquet file written by deepdive embed")],
    top: Annotated[int, typer.Option(help="How many windows to list")] = 10,
    model: Annotated[str | None, typer.Option(help="The model (default: the one the embeddings were made with)")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format")] = Format.table,
) -> None:
    """The windows most like QUERY (cosine similarity of the model's embeddings), with files and times."""
    import json

    from ..embedding import search as find

    try:
        check(top >= 1, f"--top {top}: give how many windows to list, 1 or more")
        hits = find(query, embeddings, model, top)
    except DeepdiveError as exc:
        fail(str(exc))
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
        rich_console().print(t)


@app.command(rich_help_panel=PANEL)
def segments(
    scan_out: Annotated[Path, typer.Argument(help="The --out folder of a deepdive scan")],
    out: Annotated[Path, typer.Option(help="Folder for the clips and spectrograms")],
    min_confidence: Annotated[float, typer.Option(help="Only events whose peak score is at least this")] = 0.0,
    max_per_label: Annotated[int | None, typer.Option(help="At most this many events per label, the most confident")] = None,
) -> None:
    """Cut each event of a scan out as a clip (<label>/<file>_<start>_<end>.wav, padded 0.5 s) with its
    spectrogram (.png), to check the detections by ear and eye; segments.csv lists them."""
    from rich.progress import Progress

    from ..segments import write_segments

    try:
        check(finite(min_confidence) and 0 <= min_confidence <= 1,
               f"--min-confidence {min_confidence}: give a score from 0 to 1")
        check(max_per_label is None or max_per_label >= 1, f"--max-per-label {max_per_label}: give 1 or more")
        with Progress(console=rich_console(stderr=True), transient=True) as bar:
            task = bar.add_task("segments", total=None)
            result = write_segments(scan_out, out, min_confidence, max_per_label,
                                    progress=lambda d, t: bar.update(task, completed=d, total=t),
                                    on_error=lambda f, m: fail(m))
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    print(f"{result['segments']} segments ({', '.join(result['labels']) or 'no events'}) -> {out}  "
          f"(list: {out / 'segments.csv'})")
    if result["failed"]:
        raise typer.Exit(1)
