"""The 2013 Marinexplore / Cornell whale detection challenge layout.

    train.csv            clip_name,label        (label 1: a North Atlantic right whale up-call)
    train/trainN.aiff    2 s mono clips at 2 kHz
    test/testN.aiff      clips to score; the submission is clip,probability for each
    sources.csv          optional: clip_name,source_cut,tape,offset_s (../shared/data/rightwhale2k has it)

With `sources.csv`, clips of one tape form one group (an encounter), so splits never put clips of one
tape on both sides. Without it nothing says which clips were recorded together; every clip is then its
own group, and a split can only be as honest as the clips are independent (say so in any figure).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..errors import DatasetError
from .base import Recording

LABELS = {"0": "noise", "1": "right whale"}
POSITIVE = LABELS["1"]
CLIP_SUFFIXES = {".aif", ".aiff", ".wav", ".flac"}


def natural_key(name: str) -> list:
    """Sort key that puts test2 before test10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_kaggle(root: str | Path) -> list[Recording]:
    """The labelled training clips of a challenge folder, grouped by tape where sources.csv says."""
    root = Path(root)
    table = root / "train.csv"
    if not table.is_file():
        raise DatasetError(f"{root}: no train.csv; give the challenge folder (train.csv, train/, test/)")
    sources: dict[str, dict] = {}
    if (root / "sources.csv").is_file():
        with open(root / "sources.csv", newline="", encoding="utf-8") as f:
            sources = {r["clip_name"]: r for r in csv.DictReader(f)}
    out = []
    with open(table, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"clip_name", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{table}: the header must be clip_name,label")
        for i, r in enumerate(reader, start=2):
            label = LABELS.get(r["label"].strip())
            if label is None:
                raise DatasetError(f"{table}: line {i}: label '{r['label']}' is not 0 or 1")
            path = root / "train" / r["clip_name"]
            src = sources.get(r["clip_name"], {})
            tape = src.get("tape", "")
            out.append(Recording(
                path=str(path), label=label, group=f"tape:{tape}" if tape else f"clip:{r['clip_name']}",
                tape=tape, cut_id=src.get("source_cut", ""),
            ))
    if not out:
        raise DatasetError(f"{table}: no clips listed")
    missing = [r.path for r in out if not Path(r.path).is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: listed in train.csv but missing ({len(missing)} clips missing in all)")
    return out


def list_test_clips(folder: str | Path) -> list[Path]:
    """The clips to score: a challenge folder's test/ (or the folder itself), in natural order."""
    folder = Path(folder)
    if (folder / "test").is_dir():
        folder = folder / "test"
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; give the challenge's test/ folder")
    clips = sorted((p for p in folder.iterdir() if p.suffix.lower() in CLIP_SUFFIXES and p.is_file()),
                   key=lambda p: natural_key(p.name))
    if not clips:
        raise DatasetError(f"{folder}: no .aiff, .aif, .wav or .flac clips in it")
    return clips
