"""Folder per class: `<root>/<label>/<file>`; every file is its own encounter unless told otherwise."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import Recording

AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".flac", ".ogg", ".mp3"}


def load_folders(root: str | Path, group_by: str = "file") -> list[Recording]:
    """Load `<root>/<label>/**/<file>`. `group_by='subfolder'` makes each first-level subfolder of a
    class one encounter (put one deployment or day per subfolder); the default treats files as
    independent, which is only honest when they come from different encounters."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; give a folder with one subfolder per class")
    out = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(class_dir.rglob("*")):
            if f.suffix.lower() not in AUDIO_SUFFIXES or not f.is_file():
                continue
            rel = f.relative_to(class_dir)
            group = f"{class_dir.name}/{rel.parts[0]}" if group_by == "subfolder" and len(rel.parts) > 1 else str(f)
            out.append(Recording(path=str(f), label=class_dir.name.replace("_", " "), group=group, cut_id=f.stem))
    if not out:
        raise DatasetError(f"{root}: no audio files in class subfolders")
    return out
