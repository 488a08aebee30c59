"""Datasets: one loader per source, all returning `Recording` rows; selection as in Deep Dive."""

from .base import Recording, select, summarize
from .folders import load_folders
from .kaggle import list_test_clips, load_calls, load_kaggle
from .manifest import load_manifest, write_manifest
from .watkins import load_watkins

__all__ = [
    "Recording",
    "list_test_clips",
    "load_calls",
    "load_folders",
    "load_kaggle",
    "load_manifest",
    "load_watkins",
    "load_dataset",
    "load_datasets",
    "as_sources",
    "select",
    "summarize",
    "write_manifest",
]


def load_dataset(kind: str, path: str) -> list[Recording]:
    """Load a dataset by kind: 'watkins', 'folders', 'manifest' or 'kaggle'."""
    from ..errors import DatasetError

    loaders = {"watkins": load_watkins, "folders": load_folders, "manifest": load_manifest, "kaggle": load_kaggle}
    if kind not in loaders:
        raise DatasetError(f"{path}: unknown dataset kind '{kind}'; use one of {', '.join(loaders)}")
    return loaders[kind](path)


def load_datasets(kind: str, paths: list[str]) -> list[Recording]:
    """Several datasets of one kind trained on together (e.g. the challenge's buoy clips and clips cut
    from Watkins tapes): each recording's `source` is its folder's name (made unique), and its group is
    prefixed by it, so that no group spans two sources and every split is made within each source
    (`as_sources`)."""
    if len(paths) == 1:
        return load_dataset(kind, paths[0])
    return as_sources([(path, load_dataset(kind, path)) for path in paths])


def as_sources(datasets: list[tuple[str, list[Recording]]]) -> list[Recording]:
    """Recordings of several folders (each `(path, recordings)`) as one list of sources: each recording's
    `source` is its folder's name (made unique) and its group is prefixed by it, so that no group spans
    two sources and every split is made within each source."""
    from dataclasses import replace
    from pathlib import Path

    out: list[Recording] = []
    taken: set[str] = set()
    for path, recordings in datasets:
        name = base = Path(path).resolve().name or "data"
        n = 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        out += [replace(r, source=name, group=f"{name}/{r.group}") for r in recordings]
    return out


def dataset_terms(kind: str, paths: list[str]) -> str:
    """The terms the recordings of these datasets come with, each said once."""
    from .kaggle import data_terms
    from .watkins import TERMS

    terms = []
    for path in paths:
        t = TERMS if kind == "watkins" else data_terms(path) if kind == "kaggle" else ""
        if t and t not in terms:
            terms.append(t)
    return " ".join(terms) if terms else "See the training data's own terms."
