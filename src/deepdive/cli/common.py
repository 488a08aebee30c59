"""What every command shares: the app, option checks, one-line errors, per-file progress."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DeepdiveError

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP,
                  help="Marine-mammal bioacoustics: rank species in recordings, detect right-whale calls, train and "
                       "evaluate models.")
data_app = typer.Typer(no_args_is_help=True, context_settings=HELP, help="Get training data.")
app.add_typer(data_app, name="data", rich_help_panel="Train your own")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"deepdive {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print the version and exit")] = False,
) -> None:
    """Marine-mammal bioacoustics: rank species in recordings, detect right-whale calls, train and evaluate models."""


def check(ok: bool, message: str) -> None:
    """A bad option value: one line naming the fix (raised as the package's error)."""
    if not ok:
        raise DeepdiveError(message)


def finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def check_threshold(threshold: float | None) -> None:
    if threshold is not None:
        check(finite(threshold) and 0 <= threshold <= 1, f"--threshold {threshold}: give a probability from 0 to 1")


def check_hop(hop: float | None) -> None:
    if hop is not None:
        from ..scanning import check_hop as check_seconds

        try:
            check_seconds(hop)
        except DeepdiveError as exc:
            raise DeepdiveError(f"--{exc} (default: half a window)") from None


def rich_console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def each_file(files: list[Path], fn, what: str, progress_from: int) -> tuple[list[dict], bool]:
    """{"file": ..., **fn(file)} per file, or {"file": ..., "error": ...} with one line on stderr; a
    progress bar on stderr (stdout stays clean for JSON and CSV) from `progress_from` files on."""
    from rich.progress import Progress

    results, failed = [], False
    with Progress(console=rich_console(stderr=True), transient=True, disable=len(files) < progress_from) as bar:
        task = bar.add_task(what, total=len(files))
        for f in files:
            try:
                results.append({"file": str(f), **fn(f)})
            except DeepdiveError as exc:
                failed = True
                msg = str(exc)
                results.append({"file": str(f), "error": msg})
                fail(msg if msg.startswith(str(f)) else f"{f}: {msg}")
            bar.advance(task)
    return results, failed



RECALL_HELP = ("Detectors: the threshold of the card's operating point that found this share of the calls on "
               "the training tapes (0.5, 0.8, 0.9 or 0.95), instead of --threshold")
