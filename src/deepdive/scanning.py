"""Scan long recordings: slide a model's window over a file with a hop, score every window, and merge
the windows above a threshold into events.

Streaming without repeated work. The file is read block by block at the model's sample rate. For
spectrogram features (log-mel, stft-image) every STFT frame of the file is computed once, centred on
multiples of the frame hop as in a spectrogram of the whole file, and each window is a slice of
`n_frames` frames starting at a multiple of the window hop: overlapping windows share their frames.
Each window is then put in dB relative to its own peak, exactly as the models were trained. The one
difference from cutting the window out and computing it alone is at its edges: the frames within
n_fft/2 of a window's edge see the neighbouring audio instead of zero padding (at the file's start
and end they see zeros, as a lone window would). Other features (complexity-entropy series) are
computed per window. Memory holds one block, one window of frames and one batch, whatever the file's
length.

Windows. Window k starts at k * hop (the hop is rounded to whole frames); windows lie inside the file,
and when the file does not end on a window boundary a last window ends at the file's end. A file
shorter than one window gets one padded window, as `classify` and `detect` do.

Events. A detector's window is "on" when its probability reaches the threshold; a species model's
when its top species' probability does. Consecutive "on" windows (for species: with the same top
species) whose spans touch or overlap merge into one event from the first window's start to the last
window's end, with the peak and mean score over its windows.
"""

from __future__ import annotations

import io
import json
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio
from .bundle import Bundle, resolve
from .errors import AudioError
from .features.spectrogram import (
    MelConfig,
    StftImageConfig,
    _frames_power,
    mel_filterbank,
    power_to_db,
    resize_image,
)

SCHEMA_VERSION = "deepdive-events/1"


@dataclass
class Event:
    start_s: float
    end_s: float
    label: str
    scientific_name: str
    peak: float
    mean: float
    windows: int


def _frame_features(cfg, power: np.ndarray) -> np.ndarray:
    """Per-frame values before the window's dB step: (frames, rows)."""
    if isinstance(cfg, MelConfig):
        fb = mel_filterbank(cfg.sr, cfg.n_fft, cfg.n_mels, float(cfg.fmin), float(cfg.fmax))
        return power @ fb.T
    lo, hi = cfg.bins
    return power[:, lo:hi]


def _window_from_frames(cfg, frames: np.ndarray) -> np.ndarray:
    db = power_to_db(frames.T, ref="max", top_db=cfg.top_db)
    if isinstance(cfg, StftImageConfig) and cfg.image is not None:
        return resize_image(db, cfg.image)
    return np.ascontiguousarray(db)


def _frames_stream(blocks: Iterator[np.ndarray], cfg) -> Iterator[np.ndarray]:
    """The file's STFT frames (centred, zero-padded at its two ends), in chunks, computed once."""
    half, hop, n_fft = cfg.n_fft // 2, cfg.hop_length, cfg.n_fft
    buf = np.zeros(half, dtype=np.float32)  # the centre padding before the first sample
    for block in blocks:
        buf = np.concatenate([buf, block])
        usable = (len(buf) - n_fft) // hop + 1 if len(buf) >= n_fft else 0
        if usable > 0:
            yield _frame_features(cfg, _frames_power(buf[: (usable - 1) * hop + n_fft], n_fft, hop, False))
            buf = buf[usable * hop :]
    buf = np.concatenate([buf, np.zeros(half, dtype=np.float32)])
    if len(buf) >= n_fft:
        yield _frame_features(cfg, _frames_power(buf, n_fft, hop, False))


def _edge_frames(cfg, window: np.ndarray) -> tuple[int, np.ndarray, int, np.ndarray]:
    """The frames of a lone window that reach past its edges, computed with its zero padding:
    (e, the first e frames, r0, frames r0..n-1)."""
    half, hop, n_fft, n = cfg.n_fft // 2, cfg.hop_length, cfg.n_fft, cfg.n_frames
    w = len(window)
    e = -(-half // hop)  # frames i with i*hop - half < 0
    left = np.concatenate([np.zeros(half, np.float32), window[: (e - 1) * hop + half]])
    r0 = max(e, -(-(w - half + 1) // hop))  # frames i with i*hop + half > w
    right = np.concatenate([window[r0 * hop - half :], np.zeros((n - 1) * hop + half - w, np.float32)])
    return (e, _frame_features(cfg, _frames_power(left, n_fft, hop, False)[:e]),
            r0, _frame_features(cfg, _frames_power(right, n_fft, hop, False)[: n - r0]))


def sliding_windows(source: str | Path | np.ndarray, bundle: Bundle, hop_s: float, sr: int | None = None,
                    batch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (window start times in s, features) batches of a file slid with `hop_s`."""
    cfg = bundle.features
    if not isinstance(cfg, MelConfig | StftImageConfig):
        yield from _per_window(source, bundle, hop_s, sr, batch)
        return
    hop_frames = max(1, int(round(hop_s * cfg.sr / cfg.hop_length)))
    n, hop, w = cfg.n_frames, cfg.hop_length, cfg.window_samples
    samples = np.zeros(0, dtype=np.float32)
    s_first = 0  # sample index of samples[0]
    total = 0

    def tee(blocks):
        nonlocal samples, total
        for b in blocks:
            samples = np.concatenate([samples, b])
            total += len(b)
            yield b

    def window_at(start_frame: int, frames: np.ndarray) -> np.ndarray:
        s0 = start_frame * hop - s_first
        e, left, r0, right = _edge_frames(cfg, samples[s0 : s0 + w])
        frames = frames.copy()
        frames[:e], frames[r0:] = left, right
        return _window_from_frames(cfg, frames)

    pending = np.zeros((0, 0), dtype=np.float32)
    first = 0  # frame index of pending[0]
    next_start = 0  # frame index of the next window
    starts: list[float] = []
    feats: list[np.ndarray] = []
    emitted_end = 0
    for chunk in _frames_stream(tee(audio.blocks(source, cfg.sr, sr)), cfg):
        pending = chunk if pending.size == 0 else np.concatenate([pending, chunk])
        while next_start + n <= first + len(pending) and next_start * hop + w <= total:
            s = next_start - first
            starts.append(next_start * hop / cfg.sr)
            feats.append(window_at(next_start, pending[s : s + n]))
            emitted_end = next_start * hop + w
            next_start += hop_frames
            if len(feats) == batch:
                yield np.array(starts), np.stack(feats)
                starts, feats = [], []
        drop = min(next_start - first, len(pending) - n - 1)  # keep a window of frames for a last window
        if drop > 0:
            pending, first = pending[drop:], first + drop
        keep_from = min(first * hop, max(0, total - w))  # and its samples
        if keep_from > s_first:
            samples, s_first = samples[keep_from - s_first :], keep_from
    if emitted_end == 0:  # shorter than one window: one padded window, as classify and detect do
        from .predict import window_features

        yield from window_features(source, bundle, sr)
        return
    if emitted_end < total:  # a last window ending at the file's end (its start rounded to a frame)
        last = (total - w) // hop
        s = last - first
        if 0 <= s and s + n <= len(pending):
            starts.append(last * hop / cfg.sr)
            feats.append(window_at(last, pending[s : s + n]))
    if feats:
        yield np.array(starts), np.stack(feats)


def _per_window(source, bundle: Bundle, hop_s: float, sr: int | None, batch: int):
    """Features without shared frames: cut each window out of a sample buffer and compute it alone."""
    cfg = bundle.features
    w, hop = cfg.window_samples, max(1, int(round(hop_s * cfg.sr)))
    buf = np.zeros(0, dtype=np.float32)
    first = next_start = total = 0
    starts, feats = [], []
    for block in audio.blocks(source, cfg.sr, sr):
        total += len(block)
        buf = np.concatenate([buf, block])
        while next_start + w <= first + len(buf):
            s = next_start - first
            starts.append(next_start / cfg.sr)
            feats.append(cfg.compute(buf[s : s + w], cfg.sr))
            next_start += hop
            if len(feats) == batch:
                yield np.array(starts), np.stack(feats)
                starts, feats = [], []
        drop = min(next_start - first, len(buf) - w)  # keep a window of samples for a last window
        if drop > 0:
            buf, first = buf[drop:], first + drop
    if total < w:
        from .predict import window_features

        yield from window_features(source, bundle, sr)
        return
    if (next_start - hop) + w < total:
        starts.append((total - w) / cfg.sr)
        feats.append(cfg.compute(buf[len(buf) - w :], cfg.sr))
    if feats:
        yield np.array(starts), np.stack(feats)


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """The items of `items`, computed in a background thread up to `depth` ahead.

    The next batch's features (numpy and scipy's FFT release the GIL) are computed while ONNX Runtime
    scores this one: on two cores a species scan is about 10% faster. An exception in the thread is
    raised here, in the caller's thread; when the caller stops early the thread stops too."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as exc:  # handed to the caller's thread
            put((end, exc))

    thread = threading.Thread(target=work, name="deepdive-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


def window_scores(source, model=None, hop_s: float | None = None, sr: int | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, Bundle]:
    """(window starts in s, scores, bundle): scores are (n,) call probabilities for a detector, (n,
    n_labels) probabilities for a species model. `model`: a bundle, a folder, "species", or None for
    the bundled right-whale detector. `hop_s` defaults to half the window."""
    bundle = resolve("rightwhale" if model is None else model)
    hop = bundle.features.window_s / 2 if hop_s is None else hop_s
    score = bundle.detect if bundle.task == "detection" else bundle.predict
    starts, scores = [], []
    for s, f in prefetched(sliding_windows(source, bundle, hop, sr)):
        starts.append(s)
        scores.append(score(f))
    if not scores:
        raise AudioError(f"{source if not isinstance(source, np.ndarray) else 'array input'}: nothing to scan")
    return np.concatenate(starts), np.concatenate(scores), bundle


def events_from_scores(starts: np.ndarray, scores: np.ndarray, bundle: Bundle, threshold: float | None = None
                       ) -> list[Event]:
    """Merge consecutive windows above the threshold (same top species, for a species model)."""
    window = bundle.features.window_s
    if bundle.task == "detection":
        t = bundle.threshold if threshold is None else threshold
        on, value = scores >= t, scores
        labels = [bundle.card["positive_label"]] * len(scores)
        sci = [""] * len(scores)
    else:
        t = 0.5 if threshold is None else threshold
        top = scores.argmax(1)
        value = scores[np.arange(len(scores)), top]
        on = value >= t
        labels = [bundle.labels[i] for i in top]
        sci = [bundle.scientific_names[i] for i in top]
    events: list[Event] = []
    run: list[int] = []

    def close():
        if run:
            v = value[run]
            events.append(Event(float(starts[run[0]]), float(starts[run[-1]] + window), labels[run[0]], sci[run[0]],
                                float(v.max()), float(v.mean()), len(run)))

    for i in range(len(starts)):
        joins = run and on[i] and labels[i] == labels[run[-1]] and starts[i] <= starts[run[-1]] + window
        if joins:
            run.append(i)
            continue
        close()
        run = [i] if on[i] else []
    close()
    return events


def scan(source, model=None, hop_s: float | None = None, threshold: float | None = None, sr: int | None = None
         ) -> list[dict]:
    """Events of one recording: [{"start_s", "end_s", "label", "scientific_name", "peak", "mean", "windows"}]."""
    starts, scores, bundle = window_scores(source, model, hop_s, sr)
    return [e.__dict__ for e in events_from_scores(starts, scores, bundle, threshold)]


# ---------------------------------------------------------------- scanning files and folders


@dataclass
class FileResult:
    path: str
    duration_s: float
    events: list[dict]
    error: str = ""
    starts: np.ndarray | None = None  # window starts (s)
    scores: np.ndarray | None = None  # (n,) call probabilities or (n, n_labels) probabilities


def find_audio(paths, recursive: bool = False) -> list[Path]:
    """The audio files named, and those inside the folders named (their subfolders too with `recursive`)."""
    from .datasets.folders import AUDIO_SUFFIXES

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            out += sorted(f for f in found if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(p)
    return out


def scan_file(path, model=None, hop_s: float | None = None, threshold: float | None = None) -> FileResult:
    """Window scores and events of one file; a file that cannot be read gives its error (no exception).
    `model` may be a bundle folder (so that worker processes and Dask workers load it themselves)."""
    from .errors import DeepdiveError

    try:
        duration = audio.info(path).duration_s
        starts, scores, bundle = window_scores(path, model, hop_s)
        events = [e.__dict__ for e in events_from_scores(starts, scores, bundle, threshold)]
        return FileResult(str(path), duration, events, "", starts, scores.astype(np.float32))
    except DeepdiveError as exc:
        return FileResult(str(path), 0.0, [], str(exc))


FORMATS = ("raven", "csv", "json", "parquet")
JOURNAL = "journal.jsonl"


def _identity(path: Path) -> dict:
    st = path.stat() if path.exists() else None
    return {"file": str(path), "size": st.st_size if st else -1, "mtime_ns": st.st_mtime_ns if st else -1}


def _read_journal(out: Path) -> dict[str, dict]:
    """Finished files by path; a line cut short by a crash is ignored (its file is scanned again)."""
    done: dict[str, dict] = {}
    path = out / JOURNAL
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[entry["file"]] = entry
    return done


def _part_name(path: str) -> str:
    import hashlib

    return f"{Path(path).stem}-{hashlib.sha1(path.encode()).hexdigest()[:10]}"


def _finish(result: FileResult, out: Path, formats, band, used: set[str]) -> dict:
    """Write one file's own outputs (atomically), then its journal line: the line comes last, so a
    file whose line is there has all its outputs."""
    from .outputs import raven_table
    from .store import atomic_write_bytes, atomic_write_text

    entry = {**_identity(Path(result.path)), "duration_s": result.duration_s, "events": result.events,
             "error": result.error, "part": "", "raven": ""}
    if not result.error:
        entry["part"] = _part_name(result.path)
        buf = io.BytesIO()
        np.savez(buf, starts=result.starts, scores=result.scores)
        atomic_write_bytes(out / "parts" / f"{entry['part']}.npz", buf.getvalue())
        if "raven" in formats:
            stem = Path(result.path).stem
            name, k = stem, 1
            while name in used:
                k += 1
                name = f"{stem}-{k}"
            used.add(name)
            entry["raven"] = f"{name}.selections.txt"
            atomic_write_text(out / entry["raven"], raven_table([(result.path, result.duration_s, result.events)], *band))
    with open(out / JOURNAL, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return entry


def _results(files, model_ref, hop_s, threshold, workers: int, dask: str | None):
    """FileResults as they finish: in this process, in a process pool, or on a Dask cluster."""
    if dask:
        from distributed import Client, as_completed

        with Client(dask) as client:
            futures = client.map(scan_file, [str(f) for f in files], model=model_ref, hop_s=hop_s, threshold=threshold,
                                 pure=False)
            for fut in as_completed(futures):
                yield fut.result()
        return
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(scan_file, str(f), model_ref, hop_s, threshold) for f in files]
            for fut in as_completed(futures):
                yield fut.result()
        return
    for f in files:
        yield scan_file(f, model_ref, hop_s, threshold)


def scan_files(paths, out, model=None, hop_s: float | None = None, threshold: float | None = None,
               formats=("raven", "csv", "json"), recursive: bool = False, progress=None, workers: int = 1,
               dask: str | None = None) -> dict:
    """Scan files and folders into `out` and return the summary.

    Per file, as it finishes: `<stem>.selections.txt` (raven) and `parts/<stem>-<hash>.npz` (its window
    scores), then a line in `journal.jsonl`. A rerun on the same `out` skips every file the journal
    holds (same path, size and modification time), so an interrupted scan, even killed, goes on where it
    stopped. At the end, from the journal: `all.selections.txt`, `events.csv`, `events.json`,
    `windows.parquet` and `events.parquet`, `errors.csv` and `summary.json`, each written atomically.
    `progress(done_files, total_files, audio_seconds_done)` after each file. `workers` > 1 spreads files
    over local processes; `dask` ("tcp://host:8786") sends them to a Dask cluster."""
    import time

    from .errors import DeepdiveError

    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise DeepdiveError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DeepdiveError("Parquet output needs pyarrow: pip install 'deepdive[scan]'") from None
    bundle = resolve("rightwhale" if model is None else model)
    model_ref = str(bundle.path)
    files = find_audio(paths, recursive)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    band = (float(getattr(bundle.features, "fmin", 0.0)), float(getattr(bundle.features, "fmax", bundle.features.sr / 2)))
    journal = _read_journal(out)
    from .store import atomic_write_text

    # rewrite the journal with its whole lines only: a line cut short by a kill must not swallow the next
    atomic_write_text(out / JOURNAL, "".join(json.dumps(e) + "\n" for e in journal.values()))
    done = {str(f): journal[str(f)] for f in files if str(f) in journal
            and {k: journal[str(f)][k] for k in ("size", "mtime_ns")} == {k: _identity(f)[k] for k in ("size", "mtime_ns")}}
    todo = [f for f in files if str(f) not in done]
    used = {Path(e["raven"]).name.removesuffix(".selections.txt") for e in done.values() if e.get("raven")}
    seconds = sum(e["duration_s"] for e in done.values())
    t0 = time.perf_counter()
    scanned_s = 0.0
    if progress:
        progress(len(done), len(files), seconds)
    for r in _results(todo, model_ref, hop_s, threshold, workers, dask):
        done[r.path] = _finish(r, out, formats, band, used)
        seconds += r.duration_s
        scanned_s += r.duration_s
        if progress:
            progress(len(done), len(files), seconds)
    elapsed = time.perf_counter() - t0
    entries = [done[str(f)] for f in files]
    summary = _write_run_outputs(entries, out, formats, band, bundle)
    summary.update({"resumed_files": len(files) - len(todo), "seconds": round(elapsed, 2),
                    "times_real_time": round(scanned_s / elapsed, 1) if elapsed > 0 and scanned_s else None,
                    "workers": workers, "dask": dask or ""})
    from .store import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    return summary


def _write_run_outputs(entries: list[dict], out: Path, formats, band, bundle: Bundle) -> dict:
    from .outputs import errors_csv, events_csv, events_json, raven_table
    from .store import atomic_write_bytes, atomic_write_text

    results = [FileResult(e["file"], e["duration_s"], e["events"], e["error"]) for e in entries]
    ok = [r for r in results if not r.error]
    if "raven" in formats:
        atomic_write_text(out / "all.selections.txt", raven_table([(r.path, r.duration_s, r.events) for r in ok], *band))
    if "csv" in formats:
        atomic_write_text(out / "events.csv", events_csv(ok))
    if "json" in formats:
        atomic_write_text(out / "events.json", events_json(ok, SCHEMA_VERSION, str(bundle.path)))
    if "parquet" in formats:
        from .outputs import events_parquet, windows_parquet

        parts = [(e["file"], np.load(out / "parts" / f"{e['part']}.npz")) for e in entries if not e["error"]]
        atomic_write_bytes(out / "windows.parquet", windows_parquet(parts, bundle))
        atomic_write_bytes(out / "events.parquet", events_parquet(ok))
    atomic_write_text(out / "errors.csv", errors_csv(results))
    return {
        "schema": SCHEMA_VERSION, "model": str(bundle.path), "task": bundle.task, "files": len(results),
        "failed": len(results) - len(ok), "audio_hours": round(sum(r.duration_s for r in ok) / 3600, 4),
        "events": sum(len(r.events) for r in ok),
    }
