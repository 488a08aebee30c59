"""CSV manifest: `path,label[,group,start_s,end_s,scientific_name]`; relative paths are relative to the CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import DatasetError
from .base import Recording
from .taxonomy import family_of


def _float(v: str | None) -> float | None:
    return float(v) if v not in (None, "") else None


def load_manifest(path: str | Path) -> list[Recording]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such manifest; give a CSV with columns path,label[,group,start_s,end_s]")
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: the header must name at least 'path' and 'label'")
        for i, r in enumerate(reader, start=2):
            if not r["path"] or not r["label"]:
                raise DatasetError(f"{path}: line {i} has an empty path or label")
            p = Path(r["path"])
            p = p if p.is_absolute() else path.parent / p
            sci = r.get("scientific_name") or ""
            out.append(
                Recording(
                    path=str(p),
                    label=r["label"],
                    group=r.get("group") or str(p),
                    scientific_name=sci,
                    family=family_of(sci),
                    start_s=_float(r.get("start_s")),
                    end_s=_float(r.get("end_s")),
                )
            )
    return out


def write_manifest(recordings: list[Recording], path: str | Path) -> None:
    from ..store import atomic_write_text

    rows = ["path,label,group,start_s,end_s,scientific_name"]
    for r in recordings:
        vals = [r.path, r.label, r.group, "" if r.start_s is None else f"{r.start_s:g}",
                "" if r.end_s is None else f"{r.end_s:g}", r.scientific_name]
        rows.append(",".join(_csv_cell(v) for v in vals))
    atomic_write_text(path, "\n".join(rows) + "\n")


def _csv_cell(v: str) -> str:
    return f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in ',"\n') else v
