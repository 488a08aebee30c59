"""Raven selection tables as training data: an analyst's own annotations.

Each table (tab-separated, as Raven Pro saves it) annotates one or more recordings. The audio of a
selection is found by its `Begin Path` where that file exists, else its `Begin File` in `audio_dir`
(or beside the table), else by the table's own name: `rec.Table.1.selections.txt` annotates `rec.wav`
(or any other audio suffix) beside it.

Each recording is cut into consecutive windows of `window_s` (a last stretch shorter than a window
is dropped). A window overlapping a selection takes that selection's label (the one it overlaps most,
where several do), read from `label_column` (default: the first of Species, Label, Annotation,
Class that the table has); a window overlapping none is `BACKGROUND`. Windows are returned as
recordings with start_s/end_s, each recording (file) its own group, so that no split puts windows of
one recording on both sides.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from .. import audio
from ..errors import AudioError, DatasetError
from .base import Recording
from .folders import AUDIO_SUFFIXES

BACKGROUND = "background"
LABEL_COLUMNS = ("Species", "Label", "Annotation", "Class")


def _table_stem_audio(table: Path) -> Path | None:
    """`rec.Table.1.selections.txt` -> `rec.<audio suffix>` beside it (the first that exists)."""
    name = table.name
    stem = name.split(".Table.")[0] if ".Table." in name else name.removesuffix(".txt").removesuffix(".selections")
    for suffix in sorted(AUDIO_SUFFIXES):
        candidate = table.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _audio_of(row: dict, table: Path, audio_dir: Path | None) -> Path | None:
    path = (row.get("Begin Path") or "").strip()
    if path and Path(path).is_file():
        return Path(path)
    name = (row.get("Begin File") or "").strip() or (Path(path.replace("\\", "/")).name if path else "")
    if name:
        for folder in ([audio_dir] if audio_dir else []) + [table.parent]:
            if (folder / name).is_file():
                return folder / name
    return _table_stem_audio(table)


def read_selections(tables: list[str | Path], audio_dir: str | Path | None = None, label_column: str | None = None
                    ) -> dict[Path, list[tuple[float, float, str]]]:
    """(begin, end, label) selections per audio file, from Raven selection tables."""
    audio_dir = Path(audio_dir) if audio_dir else None
    found: dict[Path, list[tuple[float, float, str]]] = defaultdict(list)
    for table in map(Path, tables):
        if not table.is_file():
            raise DatasetError(f"{table}: no such selection table")
        with open(table, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter="\t")
            columns = reader.fieldnames or []
            if not {"Begin Time (s)", "End Time (s)"} <= set(columns):
                raise DatasetError(f"{table}: not a Raven selection table (no 'Begin Time (s)' and 'End Time (s)' columns)")
            column = label_column or next((c for c in LABEL_COLUMNS if c in columns), None)
            if column is None or column not in columns:
                raise DatasetError(f"{table}: no label column {label_column or ' / '.join(LABEL_COLUMNS)}; "
                                   f"choose one of its columns with --label-column ({', '.join(columns)})")
            for i, row in enumerate(reader, start=2):
                if (row.get("View") or "").startswith("Waveform"):  # Raven repeats each selection per view
                    continue
                label = (row.get(column) or "").strip()
                if not label:
                    continue
                try:
                    begin, end = float(row["Begin Time (s)"]), float(row["End Time (s)"])
                except (TypeError, ValueError):
                    raise DatasetError(f"{table}: line {i}: Begin/End Time is not a number") from None
                if row.get("File Offset (s)") not in (None, ""):  # times within the file, not the table's
                    offset = float(row["File Offset (s)"])
                    begin, end = offset, offset + (end - begin)
                path = _audio_of(row, table, audio_dir)
                if path is None:
                    raise DatasetError(f"{table}: line {i}: its audio is not found (Begin Path, Begin File in "
                                       "--audio-dir, or a recording named like the table beside it)")
                found[path].append((begin, end, label))
    if not found:
        raise DatasetError(f"{', '.join(map(str, tables))}: no labelled selections")
    return dict(found)


def load_raven(tables: list[str | Path], window_s: float, audio_dir: str | Path | None = None,
               label_column: str | None = None) -> list[Recording]:
    """Labelled windows of the annotated recordings (see the module docstring)."""
    if not window_s > 0:
        raise DatasetError(f"window {window_s}: give a window length above 0 s")
    out: list[Recording] = []
    for path, selections in read_selections(tables, audio_dir, label_column).items():
        try:
            duration = audio.info(path).duration_s
        except AudioError as exc:
            raise DatasetError(str(exc)) from None
        k = 0
        while (k + 1) * window_s <= duration + 1e-9:
            a, b = k * window_s, (k + 1) * window_s
            overlap: dict[str, float] = defaultdict(float)
            for begin, end, label in selections:
                overlap[label] += max(0.0, min(b, end) - max(a, begin))
            label = max(overlap, key=lambda lab: overlap[lab]) if any(v > 0 for v in overlap.values()) else BACKGROUND
            out.append(Recording(path=str(path), label=label, group=str(path), cut_id=f"{path.stem}@{a:g}",
                                 start_s=a, end_s=b, duration_s=window_s))
            k += 1
    if not out:
        raise DatasetError(f"{', '.join(map(str, tables))}: the recordings are shorter than one window ({window_s:g} s)")
    return out
