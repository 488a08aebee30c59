"""The Watkins Marine Mammal Sound Database layout: `<Species_Name>/<cut_id>.wav` + metadata.csv.

Encounters: cuts that share a tape (first five characters of the cut id: year and tape number) or a
recording date belong to one encounter (connected components over both keys), so a split can keep
them together. Without metadata.csv the tape is read from the cut id and the date is unknown.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import Recording
from .taxonomy import family_of

AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".flac"}
CREDIT = (
    "Watkins Marine Mammal Sound Database, Woods Hole Oceanographic Institution and the New Bedford "
    "Whaling Museum"
)
TERMS = "Free for personal and academic, non-commercial use; credit: " + CREDIT + "."


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def encounter_groups(rows: list[dict]) -> list[str]:
    """One encounter id per row: connected components of rows sharing a tape or a date."""
    uf = _UnionFind()
    for i, r in enumerate(rows):
        node = f"row:{i}"
        uf.find(node)
        if r.get("tape"):
            uf.union(node, f"tape:{r['tape']}")
        if r.get("date"):
            uf.union(node, f"date:{r['date']}")
    roots = [uf.find(f"row:{i}") for i in range(len(rows))]
    # name each encounter after its smallest tape, stable across runs
    first_tape: dict[str, str] = {}
    for root, r in zip(roots, rows, strict=True):
        t = r.get("tape") or r.get("cut_id") or root
        first_tape[root] = min(first_tape.get(root, t), t)
    return [f"enc-{first_tape[root]}" for root in roots]


# Recording systems, from the free-text `gear` column: the first rule whose words all appear in the
# lower-cased text (punctuation and spacing ignored) names the system. Spellings vary ("AX-58",
# "AX58", "AX 58"; "WHOI/PEMTEK", "WHOI Pemtek"), so rules look for the parts that tell systems apart.
GEAR_SYSTEMS = (
    ("ithaco-pemtek", ("ithaco", "pemtek")),
    ("ax58-crown", ("ax58", "crown")),
    ("ax58-magnecorder", ("ax58", "magne")),  # Magnecorder and Magnemite, with the WHOI suitcase amplifier
    ("sonobuoy", ("sonobuoy",)),
    ("nagra", ("nagra",)),
    ("ampex", ("ampex",)),
    ("teac-digital", ("teac",)),
    ("rowboat-lc34", ("rowboat",)),
    ("vhs", ("ag6400",)),
    ("vhs", ("ag7400",)),
    ("uher-lc50", ("uher",)),
)


def recording_system(gear: str) -> str:
    """The recording system a Watkins `gear` text names (see GEAR_SYSTEMS), 'unknown' when empty, or
    the text itself, normalised, when no rule knows it."""
    import re

    text = re.sub(r"[^a-z0-9]+", "", gear.lower())
    if not text:
        return "unknown"
    for name, words in GEAR_SYSTEMS:
        if all(w in text for w in words):
            return name
    return re.sub(r"[^a-z0-9]+", "-", gear.lower()).strip("-")[:40]


def _label_from_folder(name: str) -> str:
    return name.replace("_", " ")


def load_watkins(root: str | Path) -> list[Recording]:
    """Load a Watkins folder. Uses metadata.csv when present, else the folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; give the folder that holds <Species>/<cut>.wav")
    meta = root / "metadata.csv"
    rows: list[dict] = []
    if meta.is_file():
        with open(meta, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if not r.get("path") or not r.get("species"):
                    raise DatasetError(f"{meta}: a row lacks 'path' or 'species'; the header must match the Watkins layout")
                rows.append(r)
    else:
        for species_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(species_dir.iterdir()):
                if f.suffix.lower() in AUDIO_SUFFIXES:
                    rows.append({"path": f"{species_dir.name}/{f.name}", "species": _label_from_folder(species_dir.name),
                                 "cut_id": f.stem, "tape": f.stem[:5]})
    if not rows:
        raise DatasetError(f"{root}: no recordings found; expected <Species>/<cut>.wav files or metadata.csv")
    groups = encounter_groups(rows)
    out = []
    for r, g in zip(rows, groups, strict=True):
        sci = r.get("scientific_name", "") or ""
        out.append(
            Recording(
                path=str(root / r["path"]),
                label=r["species"],
                group=g,
                scientific_name=sci,
                family=family_of(sci),
                tape=r.get("tape", "") or "",
                date=r.get("date", "") or "",
                cut_id=r.get("cut_id", "") or Path(r["path"]).stem,
                duration_s=float(r["duration_s"]) if r.get("duration_s") else None,
                sample_rate=int(float(r["sample_rate"])) if r.get("sample_rate") else None,
                also_present=r.get("also_present", "") or "",
                gear=r.get("gear", "") or "",
            )
        )
    return out


# The right whales: their cuts hold the calls a detector learns, so none of their windows is a negative.
RIGHT_WHALES = ("Northern Right Whale", "Southern Right Whale")


def detection_negatives(recordings: list[Recording], per_cut: int = 3, window_s: float = 2.0, min_s: float = 1.0,
                        label: str = "noise", exclude: tuple[str, ...] = RIGHT_WHALES, source: str = "watkins"
                        ) -> list[Recording]:
    """Negatives for a right-whale detector from Watkins cuts of other species: up to `per_cut` windows
    of `window_s` from each cut not of an `exclude` species, spread evenly over it (a cut of `min_s` to
    `window_s` is one shorter window, to be mirrored out as the challenge clips were; shorter cuts are
    left out). Each keeps its cut's encounter as `group` and its tape, so that a split can hold out the
    windows of every encounter it tests (`tape_encounters`). The humpbacks, bowheads and pilot whales
    among them are what a right-whale detector confuses at sea (as extra negatives they cost the tapes more
    than they gave: docs/detector.md, "Other species' Watkins cuts as extra negatives")."""
    out = []
    for r in recordings:
        if r.label in exclude or r.duration_s is None or r.duration_s < min_s:
            continue
        d = float(r.duration_s)
        if d < window_s:
            spans = [(0.0, round(d, 3))]
        else:
            n = min(per_cut, int(d // window_s))
            starts = np.linspace(0.0, d - window_s, n) if n > 1 else [0.0]
            spans = [(round(float(s), 3), round(float(s) + window_s, 3)) for s in starts]
        for start, end in spans:
            out.append(replace(r, label=label, source=source, start_s=start, end_s=end))
    return out


def tape_encounters(recordings: list[Recording]) -> dict[str, str]:
    """{tape: encounter} over Watkins recordings (the encounter `load_watkins` gives each cut: cuts that
    share a tape or a date), so that clips cut from a tape (rightwhale2k's `sources.csv`) can be matched
    to every Watkins window of their encounter."""
    return {r.tape: r.group for r in recordings if r.tape}
