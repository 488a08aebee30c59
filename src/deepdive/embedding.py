"""Search by example: embed every window of many recordings once, then find the windows nearest to a
call one already has.

`embed_files` slides a model over each file as a scan does (`scanning.sliding_windows`, hop half a
window by default) and keeps, per window, the model's embedding (`Bundle.embed`: the pooled vector
its classifier reads; for `species-birdnet`, BirdNET's embedding). `write_embeddings` stores them as
Parquet: one row per window, `file, start_s, end_s, embedding` (a list of float32), with the model's
name and the embedding size in the table's metadata. `search` embeds a query recording (the mean of
its windows' unit vectors) and ranks the stored windows by cosine similarity. An analyst finds more
calls like the one in hand, and can label the nearest ones to train a classifier for a new call type.

Cost: a scan's (about a thousand times real time for the bundled models on two cores), and 4 bytes
per dimension per window on disk (512 bytes a window for the detector, 1 KB for the species model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bundle import Bundle, resolve
from .errors import DeepdiveError


def embed_files(paths, model=None, hop_s: float | None = None, on_error=None, progress=None) -> list[dict]:
    """Rows {file, start_s, end_s, embedding} of every window of the files (a file that cannot be read
    goes to `on_error(path, message)` and is skipped)."""
    from .scanning import check_hop, sliding_windows

    bundle = resolve("species" if model is None else model)
    window = bundle.features.window_s
    hop = window / 2 if hop_s is None else check_hop(hop_s)
    rows = []
    for n, path in enumerate(paths, start=1):
        try:
            for starts, feats in sliding_windows(path, bundle, hop):
                for s, e in zip(starts, bundle.embed(feats), strict=True):
                    rows.append({"file": str(path), "start_s": max(0.0, float(s)), "end_s": float(s) + window,
                                 "embedding": e.astype(np.float32)})
        except DeepdiveError as exc:
            if on_error is None:
                raise
            on_error(str(path), str(exc))
        if progress:
            progress(n, len(paths))
    return rows


def write_embeddings(rows: list[dict], out: str | Path, bundle: Bundle) -> Path:
    """The rows as Parquet (atomically), the model's folder (absolute) and embedding size in the metadata."""
    import pyarrow as pa

    from .outputs import _parquet_bytes, utf8
    from .store import atomic_write_bytes

    dim = len(rows[0]["embedding"]) if rows else 0
    table = pa.table({
        "file": pa.array([utf8(r["file"]) for r in rows], pa.string()),
        "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
        "end_s": pa.array([r["end_s"] for r in rows], pa.float64()),
        "embedding": pa.array([r["embedding"].tolist() for r in rows], pa.list_(pa.float32())),
    }).replace_schema_metadata({"deepdive.model": str(bundle.path), "deepdive.dim": str(dim)})
    atomic_write_bytes(out, _parquet_bytes(table))
    return Path(out)


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, dict]:
    """(files, starts, ends, unit embeddings (n, d), metadata) of a table `write_embeddings` wrote."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DeepdiveError(f"{path}: no such embeddings file; write one with deepdive embed")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow says why in many ways
        raise DeepdiveError(f"{path}: not a Parquet file of embeddings ({str(exc)[:100]})") from None
    if not {"file", "start_s", "end_s", "embedding"} <= set(table.column_names):
        raise DeepdiveError(f"{path}: lacks file, start_s, end_s or embedding; write it with deepdive embed")
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    return (table.column("file").to_pylist(), table.column("start_s").to_numpy(), table.column("end_s").to_numpy(),
            _unit(emb), meta)


def _unit(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def search(query, embeddings: str | Path, model=None, top: int = 10, sr: int | None = None) -> list[dict]:
    """The `top` stored windows nearest to the query recording (a file, or an array with `sr`):
    [{file, start_s, end_s, similarity}], most similar first. The query is embedded with the model the
    table was written with (its folder name in the table; `model` to give another)."""
    from .scanning import sliding_windows

    files, starts, ends, emb, meta = read_embeddings(embeddings)
    bundle = resolve(model if model is not None else _model_named(meta.get("deepdive.model", "")))
    vectors = [bundle.embed(f) for _, f in sliding_windows(query, bundle, bundle.features.window_s / 2, sr)]
    q = _unit(np.concatenate(vectors)).mean(0) if vectors else None
    if q is None or q.shape[0] != emb.shape[1]:
        raise DeepdiveError(f"{embeddings}: its embeddings ({emb.shape[1] if emb.size else 0} values) are not this "
                            f"model's; search with the model that wrote them")
    q /= max(float(np.linalg.norm(q)), 1e-12)
    sim = emb @ q
    order = np.argsort(-sim, kind="stable")[:top]
    return [{"file": files[i], "start_s": round(float(starts[i]), 3), "end_s": round(float(ends[i]), 3),
             "similarity": round(float(sim[i]), 4)} for i in order]


def _model_named(name: str):
    """The model a table's metadata names: its folder where it still exists, else the bundled model of
    that folder's name (a table written on another machine), else the bundled species model."""
    if name and Path(name).is_dir():
        return name
    return {"detector": "rightwhale", "species-birdnet": "species-birdnet"}.get(Path(name).name, "species")
