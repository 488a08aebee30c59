"""On-disk feature store: windows written in shards, atomically, as they are computed.

Layout of a store folder:
    config.json              how it was prepared (mel config, prepare config, split report)
    shards/NNNNN.npy         float16 array (n, n_mels, n_frames), written to a temp name then renamed
    shards/NNNNN.csv         one row per window of that shard (written after the .npy, atomically)

A recording counts as done once its last window sits in a finished shard; a rerun skips done
recordings and ignores windows of unfinished ones (each run tags its windows with an attempt id, and
only the attempt that finished a recording is read), so an interrupted preparation resumes safely.
Peak memory is one shard plus one recording's pending windows, whatever the corpus size.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

WINDOW_FIELDS = ["key", "label", "split", "group", "start_s", "augment", "last", "attempt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`: a reader (or a
    process killed meanwhile) sees the old file or the new one, never half of one. `durable`: also
    wait until the data are on disk (fsync), so that they outlive a power cut; a scan skips this for
    each file's own outputs, which a journal line written after them vouches for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """UTF-8; a file name that is not UTF-8 (held by Python as surrogate escapes) is written back as its
    own bytes, so that the path in a table still opens the file."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"), durable)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


class StoreWriter:
    """Append windows; flush a shard when it holds `shard_size` windows."""

    def __init__(self, root: str | Path, shape: tuple[int, int], shard_size: int = 256) -> None:
        self.root = Path(root)
        self.shards = self.root / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        self.shape = tuple(shape)
        self.shard_size = shard_size
        self._feats: list[np.ndarray] = []
        self._rows: list[dict] = []
        existing = sorted(self.shards.glob("*.npy"))
        self._next = 1 + max((int(p.stem) for p in existing), default=-1)
        self.attempt = uuid.uuid4().hex[:12]

    def add(self, feat: np.ndarray, row: dict) -> None:
        if feat.shape != self.shape:
            raise ValueError(f"window shape {feat.shape} differs from the store's {self.shape}")
        self._feats.append(feat.astype(np.float16))
        self._rows.append({**row, "attempt": self.attempt})
        if len(self._feats) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self._feats:
            return
        name = f"{self._next:05d}"
        buf = io.BytesIO()
        np.save(buf, np.stack(self._feats))
        atomic_write_bytes(self.shards / f"{name}.npy", buf.getvalue())
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=WINDOW_FIELDS, lineterminator="\n")
        w.writeheader()
        for r in self._rows:
            w.writerow({k: r.get(k, "") for k in WINDOW_FIELDS})
        atomic_write_text(self.shards / f"{name}.csv", text.getvalue())
        self._next += 1
        self._feats.clear()
        self._rows.clear()


def _shard_rows(root: Path) -> Iterator[tuple[str, int, dict]]:
    for csv_path in sorted((root / "shards").glob("*.csv")):
        if not csv_path.with_suffix(".npy").is_file():
            continue
        with open(csv_path, newline="", encoding="utf-8") as f:
            for i, r in enumerate(csv.DictReader(f)):
                yield csv_path.stem, i, r


def _finished(root: Path) -> set[tuple[str, str]]:
    return {(r["key"], r.get("attempt", "")) for _, _, r in _shard_rows(root) if r["last"] in ("1", "True")}


def done_recordings(root: str | Path) -> set[str]:
    return {key for key, _ in _finished(Path(root))}


class FeatureStore:
    """Read side: the window index and memory-mapped shards."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "config.json").is_file():
            from .errors import DatasetError

            raise DatasetError(f"{self.root}: not a prepared store (no config.json); run 'deepdive prepare' first")
        self.config = json.loads((self.root / "config.json").read_text())
        done = _finished(self.root)
        self.rows: list[dict] = []
        self._loc: list[tuple[str, int]] = []
        for shard, i, r in _shard_rows(self.root):
            if (r["key"], r.get("attempt", "")) in done:
                self.rows.append(r)
                self._loc.append((shard, i))
        self._maps: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._maps:
            self._maps[name] = np.load(self.root / "shards" / f"{name}.npy", mmap_mode="r")
        return self._maps[name]

    def features(self, i: int) -> np.ndarray:
        shard, j = self._loc[i]
        return np.asarray(self._shard(shard)[j], dtype=np.float32)

    def indices(self, split: str | None = None) -> list[int]:
        return [i for i, r in enumerate(self.rows) if split is None or r["split"] == split]

    def batch(self, idx: list[int]) -> np.ndarray:
        return np.stack([self.features(i) for i in idx])

    @property
    def labels(self) -> list[str]:
        return list(self.config["labels"])
