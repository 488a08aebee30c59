"""Datasets: one loader per source, all returning `Recording` rows; selection as in Deep Dive."""

from .base import Recording, select, summarize
from .folders import load_folders
from .kaggle import list_test_clips, load_kaggle
from .manifest import load_manifest, write_manifest
from .watkins import load_watkins

__all__ = [
    "Recording",
    "list_test_clips",
    "load_folders",
    "load_kaggle",
    "load_manifest",
    "load_watkins",
    "load_dataset",
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
