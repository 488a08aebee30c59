"""The row every dataset loader returns, and selection over rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recording:
    """One labelled recording (or one labelled stretch of it when start_s/end_s are set).

    `group` is the encounter: recordings that share it are near-duplicates in sound and must stay
    on one side of any split. `tape` and `order` let a split fall back to finer units for species
    recorded in a single encounter (see prepare.split_by_encounter). `source` names the dataset (a
    folder of one recorder or project); a split of several sources is made within each one.
    """

    path: str
    label: str
    group: str
    scientific_name: str = ""
    family: str = ""
    tape: str = ""
    date: str = ""
    cut_id: str = ""
    duration_s: float | None = None
    sample_rate: int | None = None
    also_present: str = ""
    start_s: float | None = None
    end_s: float | None = None
    source: str = ""  # the dataset a recording came from, where several are trained on together
    gear: str = ""  # the recording equipment as the source's notes give it (Watkins: free text)

    @property
    def clean(self) -> bool:
        """True when the notes name no other source (another species, ship or water noise)."""
        return not self.also_present.strip()

    @property
    def key(self) -> str:
        """Identifies the recording (file plus stretch) in stores and reports."""
        if self.start_s is None and self.end_s is None:
            return self.path
        return f"{self.path}#{self.start_s or 0:g}-{'' if self.end_s is None else f'{self.end_s:g}'}"

    def to_dict(self) -> dict:
        return asdict(self)


def select(
    recordings: Iterable[Recording],
    species: Iterable[str] | None = None,
    families: Iterable[str] | None = None,
    min_duration_s: float = 0.0,
    clean_only: bool = False,
    min_recordings: int = 0,
) -> list[Recording]:
    """Deep Dive's selection: which species (common or scientific names, any case) or families,
    a minimum duration, clean single-species cuts only, and species with at least N recordings."""
    recordings = list(recordings)
    wanted = {s.strip().lower() for s in species} if species else None
    fams = {f.strip().lower() for f in families} if families else None
    if wanted is not None:
        known = {n for r in recordings for n in (r.label.lower(), r.scientific_name.lower(), r.label.lower().replace("_", " "))}
        unknown = sorted(s for s in species if s.strip().lower() not in known)
        if unknown:
            from ..errors import DatasetError

            raise DatasetError(f"--species {', '.join(unknown)}: not in this dataset; it holds "
                               + ", ".join(sorted({r.label for r in recordings})))
    if fams is not None:
        unknown = sorted(f for f in families if f.strip().lower() not in {r.family.lower() for r in recordings})
        if unknown:
            from ..errors import DatasetError

            raise DatasetError(f"--family {', '.join(unknown)}: not in this dataset; it holds "
                               + ", ".join(sorted({r.family for r in recordings if r.family})))
    out = []
    for r in recordings:
        names = {r.label.lower(), r.scientific_name.lower(), r.label.lower().replace("_", " ")}
        if wanted is not None and not (names & wanted):
            continue
        if fams is not None and r.family.lower() not in fams:
            continue
        if r.duration_s is not None and r.duration_s < min_duration_s:
            continue
        if clean_only and not r.clean:
            continue
        out.append(r)
    if min_recordings > 0:
        counts = Counter(r.label for r in out)
        out = [r for r in out if counts[r.label] >= min_recordings]
    return out


def summarize(recordings: Iterable[Recording]) -> list[dict]:
    """Per label: recordings, encounters, total duration."""
    rows: dict[str, dict] = {}
    for r in recordings:
        row = rows.setdefault(r.label, {"label": r.label, "recordings": 0, "groups": set(), "duration_s": 0.0})
        row["recordings"] += 1
        row["groups"].add(r.group)
        row["duration_s"] += r.duration_s or 0.0
    return [
        {**v, "groups": len(v["groups"]), "duration_s": round(v["duration_s"], 1)}
        for _, v in sorted(rows.items())
    ]
