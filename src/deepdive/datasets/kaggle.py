"""The 2013 Marinexplore / Cornell whale detection challenge layout.

    train.csv            clip_name,label        (label 1: a North Atlantic right whale up-call)
    train/trainN.aiff    2 s mono clips at 2 kHz
    test/testN.aiff      clips to score; the submission is clip,probability for each
    sources.csv          optional: clip_name,source_cut,tape,offset_s (../shared/data/rightwhale2k has it)

With `sources.csv`, clips of one tape form one group (an encounter), so splits never put clips of one
tape on both sides. Without it nothing says which clips were recorded together: clips with identical
samples form one group (the challenge's clips repeat some noise clips dozens of times), every other clip
is its own, and a split can only be as honest as the clips are independent (say so in any figure).
Reading every clip to find the identical ones costs about a second per thousand clips.

Terms: a folder with `LICENSE-CORNELL.txt` holds the challenge's own buoy clips (Cornell's notice), one
with `sources.csv` clips cut from Watkins recordings (the Watkins database's terms); `data_terms` says
which, and a model trained on the folder inherits them.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from ..errors import DatasetError
from .base import Recording

LABELS = {"0": "noise", "1": "right whale"}
POSITIVE = LABELS["1"]
CLIP_SUFFIXES = {".aif", ".aiff", ".wav", ".flac"}
CORNELL_LICENSE = "LICENSE-CORNELL.txt"
CORNELL_TERMS = (
    "Copyright (c) 2011 by Cornell University and the Cornell Research Foundation, Inc. All rights reserved. "
    "Free for educational, non-profit research and non-profit commercial purposes, provided this notice and "
    f"{CORNELL_LICENSE} accompany every copy; commercial use needs a licence from Cornell (Cornell Center for "
    "Technology Enterprise and Commercialization). Data courtesy of and copyrighted by Cornell University and "
    "the Cornell Research Foundation."
)


def data_terms(root: str | Path) -> str:
    """The terms a challenge-layout folder's clips come with (see the module docstring)."""
    from .watkins import TERMS

    root = Path(root)
    if (root / CORNELL_LICENSE).is_file():
        return "Cornell's right-whale challenge clips: " + CORNELL_TERMS
    if (root / "sources.csv").is_file():
        return "Clips cut from the Watkins database: " + TERMS
    return "See the training data's own terms."


def _content_key(path: Path) -> str:
    """A digest of a clip's samples (not its header), or its name where it cannot be read."""
    try:
        samples, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return f"unreadable:{path.name}"
    return hashlib.sha1(samples.tobytes() + str(sr).encode()).hexdigest()[:16]


def natural_key(name: str) -> list:
    """Sort key that puts test2 before test10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_kaggle(root: str | Path) -> list[Recording]:
    """The labelled training clips of a challenge folder, grouped by tape where sources.csv says,
    else identical clips together; `source` is the folder's name."""
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
                tape=tape, cut_id=src.get("source_cut", ""), source=root.resolve().name,
            ))
    if not out:
        raise DatasetError(f"{table}: no clips listed")
    missing = [r.path for r in out if not Path(r.path).is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: listed in train.csv but missing ({len(missing)} clips missing in all)")
    if not sources:
        out = _group_identical(out)
    return out


def load_calls(root: str | Path, species: str, scientific_name: str = "", max_clips: int = 0, seed: int = 0
               ) -> list[Recording]:
    """The up-calls (label 1) of a challenge folder as recordings of `species`: the same animal heard by
    another recorder, to train a species model beside the Watkins cuts (`prepare watkins --calls`).
    `max_clips` > 0 draws that many at random (seeded), whole groups of identical clips at a time, in
    train.csv's order; the groups are those of `load_kaggle`, so a split keeps identical clips together."""
    calls = [r for r in load_kaggle(root) if r.label == POSITIVE]
    if not calls:
        raise DatasetError(f"{root}: train.csv lists no up-call (label 1)")
    if max_clips > 0:
        import numpy as np

        groups = list(dict.fromkeys(r.group for r in calls))
        order = np.random.default_rng(seed).permutation(len(groups))
        kept: set[str] = set()
        count = {g: 0 for g in groups}
        for r in calls:
            count[r.group] += 1
        n = 0
        for i in order:
            if n >= max_clips:
                break
            kept.add(groups[i])
            n += count[groups[i]]
        calls = [r for r in calls if r.group in kept]
    from .taxonomy import family_of

    return [replace(r, label=species, scientific_name=scientific_name, family=family_of(scientific_name)) for r in calls]


def _group_identical(recordings: list[Recording]) -> list[Recording]:
    """Clips with identical samples share the group of the first of them (in train.csv's order)."""
    first: dict[str, str] = {}
    out = []
    for r in recordings:
        group = first.setdefault(_content_key(Path(r.path)), r.group)
        out.append(r if group == r.group else replace(r, group=group))
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
