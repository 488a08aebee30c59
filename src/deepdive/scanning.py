"""Scan long recordings: slide a model's window over a file with a hop, score every window, and merge
the windows above a threshold into events.

Streaming without repeated work. The file is read block by block at the model's sample rate. For
spectrogram features (log-mel, stft-image) every STFT frame of the file is computed once, centred on
multiples of the frame hop as in a spectrogram of the whole file, and each window is a slice of
`n_frames` frames starting at a multiple of the window hop: overlapping windows share their frames.
The frames within n_fft/2 of a window's edges are computed again from the window alone, with its zero
padding, and the window is put in dB relative to its own peak: each window's features are those of
the window cut out and computed alone, exactly as the models were trained. Other features
(complexity-entropy series, BirdNET embeddings) are computed per window. Memory holds a few blocks,
chunks of frames and batches, whatever the file's length.

Threads. The frames are computed in chunks of about 32 windows' worth, and the windows starting in
a chunk are featurised and scored as one task once the chunk and the next are done. The tasks run on
`threads` lanes (default: every CPU), each scoring with a one-thread ONNX Runtime session, with BLAS
held to one thread: on two cores the bundled species model scans about 1.6 times as fast as with
one ONNX Runtime session on two threads beside a feature thread (about 1,250x real time against
780x), and the scores do not depend on the number of lanes.

Windows. Window k starts at k * hop (the hop is rounded to whole frames); windows lie inside the file,
and when the file does not end on a window boundary a last window ends at the file's end. A file
shorter than one window gets one padded window, as `classify` and `detect` do.

Events. A detector's window is "on" when its probability reaches the threshold; a species model's
when its top species' probability does. Consecutive "on" windows (for species: with the same top
species) whose spans touch or overlap merge into one event from the first window's start to the last
window's end, with the peak and mean score over its windows.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import scipy.fft  # noqa: F401  (the fast FFT from the first frame: see features.spectrogram)

from . import audio
from .bundle import Bundle, cpu_threads, resolve
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
    return power[:, lo:hi].copy()


def _window_from_frames(cfg, frames: np.ndarray) -> np.ndarray:
    db = power_to_db(frames.T, ref="max", top_db=cfg.top_db)
    if isinstance(cfg, StftImageConfig) and cfg.image is not None:
        return resize_image(db, cfg.image)
    return np.ascontiguousarray(db)


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


def _chunk_frames(cfg, padded: np.ndarray) -> np.ndarray:
    return _frames_power(padded, cfg.n_fft, cfg.hop_length, False, partial(_frame_features, cfg))


def _windows_of(cfg, starts: list[int], s0: int, samples: np.ndarray, frames: np.ndarray, f0: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(start times in s, features) of the windows starting at frames `starts`; `samples` begin at the
    file's sample s0 and `frames` at its frame f0."""
    w, n, hop = cfg.window_samples, cfg.n_frames, cfg.hop_length
    feats = []
    for k in starts:
        e, left, r0, right = _edge_frames(cfg, samples[k * hop - s0 : k * hop - s0 + w])
        window = frames[k - f0 : k - f0 + n].copy()
        window[:e], window[r0:] = left, right
        feats.append(_window_from_frames(cfg, window))
    return np.array(starts) * hop / cfg.sr, np.stack(feats)


class _Inline:
    """An executor that runs each task at once, in the caller's thread."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _when_done(pool, needs: list[Future], fn) -> Future:
    """The future of fn(), submitted to `pool` once every future of `needs` is done: a task never
    holds a thread while it waits for another."""
    out: Future = Future()
    left = [len(needs)]
    lock = threading.Lock()

    def relay(inner: Future) -> None:
        if inner.cancelled():
            out.cancel()
        elif inner.exception() is not None:
            out.set_exception(inner.exception())
        else:
            out.set_result(inner.result())

    def ready(_) -> None:
        with lock:
            left[0] -= 1
            if left[0]:
                return
        try:
            pool.submit(fn).add_done_callback(relay)
        except RuntimeError as exc:  # the pool was shut down: the scan stopped
            out.set_exception(exc)

    for f in needs:
        f.add_done_callback(ready)
    return out


class _Samples:
    """A stretch of a stream kept as the blocks it was read in: appending copies nothing, a slice
    inside one block is a view, and blocks leave as a whole once nothing needs them."""

    def __init__(self) -> None:
        self.blocks: deque[np.ndarray] = deque()
        self.first = 0  # index of the first block's first sample
        self.end = 0  # index after the last sample

    def append(self, block: np.ndarray) -> None:
        if len(block):
            self.blocks.append(block)
            self.end += len(block)

    def slice(self, a: int, b: int) -> np.ndarray:
        if a < self.first or b > self.end:
            raise AssertionError(f"samples {a}:{b} are not held ({self.first}:{self.end})")
        parts, pos = [], self.first
        for block in self.blocks:
            lo, hi = max(a, pos), min(b, pos + len(block))
            if lo < hi:
                parts.append(block[lo - pos : hi - pos])
            pos += len(block)
            if pos >= b:
                break
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def drop_before(self, a: int) -> None:
        while self.blocks and self.first + len(self.blocks[0]) <= a:
            self.first += len(self.blocks.popleft())


def _frame_windows(source, cfg, hop_frames: int, sr: int | None, pool, finish, batch: int, lanes: int = 1
                   ) -> Iterator:
    """finish(starts, features) for each batch of windows of a spectrogram model, in file order; the
    work runs on `pool` (an executor), `lanes` tasks ahead at most. Yields nothing for a file shorter
    than one window.

    Two kinds of task. Frames: the STFT frames of the file are cut into chunks of C frames, each
    computed once from the samples it covers. Windows: the windows starting in chunk i, sliced from
    the frames of chunks i and i + 1 (C >= n + 1 frames, so a window never reaches chunk i + 2),
    their edge frames and dB computed, and `finish` applied (scoring, in a scan). A windows task goes
    to the pool when the frames it needs are done."""
    half, hop, n_fft, w, n = cfg.n_fft // 2, cfg.hop_length, cfg.n_fft, cfg.window_samples, cfg.n_frames
    C = max(n + 1, min(32 * hop_frames, 8192))  # frames per chunk: about 32 windows, memory bounded
    padded = _Samples()  # the file with its centre padding: index = sample + half
    padded.append(np.zeros(half, dtype=np.float32))
    total = 0  # samples read
    chunks: dict[int, Future] = {}
    pending: deque[Future] = deque()
    next_f = next_w = 0  # the next frames chunk and windows chunk to submit

    def submit_frames(i: int, count: int) -> None:
        a = i * C * hop
        chunks[i] = pool.submit(_chunk_frames, cfg, padded.slice(a, a + (count - 1) * hop + n_fft))

    def submit_windows(i: int, starts: list[int]) -> None:
        first, second = chunks.pop(i), chunks.get(i + 1)
        if not starts:
            return
        s0 = starts[0] * hop
        samples = padded.slice(s0 + half, starts[-1] * hop + w + half)
        held = [first, second, samples]

        def task():
            # take the inputs out of the closure: the frames futures keep this task among their done
            # callbacks, and a cycle would hold every chunk's frames and samples until a full collection
            first, second, samples = held
            held.clear()
            frames = first.result()
            if second is not None:
                frames = np.concatenate([frames, second.result()[: max(0, starts[-1] + n - (i + 1) * C)]])
            return [finish(*_windows_of(cfg, starts[b : b + batch], s0, samples, frames, i * C))
                    for b in range(0, len(starts), batch)]

        pending.append(_when_done(pool, [first] if second is None else [first, second], task))

    def regular(i: int, last: int) -> list[int]:
        """Window starts on the hop's grid in chunk i, up to frame `last`."""
        k0 = -(-(i * C) // hop_frames) * hop_frames
        return list(range(k0, min((i + 1) * C - 1, last) + 1, hop_frames))

    for block in audio.blocks(source, cfg.sr, sr):
        padded.append(block)
        total += len(block)
        while ((next_f + 1) * C - 1) * hop + n_fft <= total + half:  # chunk next_f is whole
            submit_frames(next_f, C)
            next_f += 1
            if next_f >= 2:  # chunks next_w and next_w + 1 are submitted: its windows can be
                submit_windows(next_w, regular(next_w, (total - w) // hop))
                next_w += 1
                # keep the samples of what is still to submit, and the last window's whole span
                padded.drop_before(min(next_w * C * hop, total + half - w - hop))
            while len(pending) > lanes:
                yield from pending.popleft().result()
    if total < w:
        return
    padded.append(np.zeros(half, dtype=np.float32))
    n_frames = total // hop + 1
    while next_f * C < n_frames:
        submit_frames(next_f, min(C, n_frames - next_f * C))
        next_f += 1
    last = (total - w) // hop  # a window ending at the file's end (its start rounded to a frame)
    grid_last = last // hop_frames * hop_frames
    for i in range(next_w, next_f):
        starts = regular(i, grid_last)
        if last > grid_last and i * C <= last < (i + 1) * C:
            starts.append(last)
        submit_windows(i, starts)
    while pending:
        yield from pending.popleft().result()


def sliding_windows(source: str | Path | np.ndarray, bundle: Bundle, hop_s: float, sr: int | None = None,
                    batch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (window start times in s, features) batches of a file slid with `hop_s`."""
    yield from _scored(source, bundle, hop_s, sr, batch, None)


def _scored(source, bundle: Bundle, hop_s: float, sr: int | None, batch: int, score, lanes: int = 1):
    """(starts, features) batches, or (starts, score(features, threads=...)) batches when `score` is
    given. A spectrogram model runs `lanes` threads, each scoring with a one-thread session; other
    features are computed in a thread of their own while the model scores on `lanes` threads."""
    cfg = bundle.features
    if not isinstance(cfg, MelConfig | StftImageConfig):
        if score is None:
            yield from _per_window(source, bundle, hop_s, sr, batch)
            return
        for s, f in prefetched(_per_window(source, bundle, hop_s, sr, batch)):
            yield s, score(f, threads=lanes)
        return
    finish = (lambda s, f: (s, f)) if score is None else (lambda s, f: (s, score(f, threads=1)))
    hop_frames = max(1, int(round(hop_s * cfg.sr / cfg.hop_length)))
    pool = ThreadPoolExecutor(lanes, thread_name_prefix="deepdive-scan") if lanes > 1 else _Inline()
    found = False
    try:
        for item in _frame_windows(source, cfg, hop_frames, sr, pool, finish, batch, lanes):
            found = True
            yield item
    finally:
        if lanes > 1:
            pool.shutdown(wait=True, cancel_futures=True)
    if not found:  # shorter than one window: one padded window, as classify and detect do
        from .predict import window_features

        for s, f in window_features(source, bundle, sr):
            yield finish(s, f)


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

    For models whose features are computed per window (complexity-entropy series, BirdNET
    embeddings): the next batch's features are computed while ONNX Runtime scores this one (numpy
    and the runtimes release the GIL). An exception in the thread is raised here, in the caller's
    thread; when the caller stops early the thread stops too."""
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


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS (the mel projection's matrix product) on one thread during a scan: OpenBLAS's own threads
    gain little on these small products and spin between calls, taking the cores that the lanes
    need (on two cores a species scan of 1 h ran at about 740x real time with them, 1,230x without)."""
    from threadpoolctl import threadpool_limits

    global _blas_users, _blas_limits
    with _blas_lock:  # files scanned side by side share the limit: the last one out restores BLAS
        if _blas_users == 0:
            _blas_limits = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limits is not None:
                _blas_limits.restore_original_limits()
                _blas_limits = None


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limits = None


def window_scores(source, model=None, hop_s: float | None = None, sr: int | None = None,
                  threads: int | None = None, on_progress=None) -> tuple[np.ndarray, np.ndarray, Bundle]:
    """(window starts in s, scores, bundle): scores are (n,) call probabilities for a detector, (n,
    n_labels) probabilities for a species model. `model`: a bundle, a folder, "species", or None for
    the bundled right-whale detector. `hop_s` defaults to half the window. `threads` (default: every
    CPU, or DEEPDIVE_THREADS): stretches of the file are featurised and scored side by side, each
    thread with a one-thread ONNX Runtime session; the scores are the same whatever the count.
    `on_progress(seconds)` is called after each batch with the end of its last window."""
    starts, scores, _, bundle = window_scores_and_novelty(source, model, hop_s, sr, threads, on_progress)
    return starts, scores, bundle


def window_scores_and_novelty(source, model=None, hop_s: float | None = None, sr: int | None = None,
                              threads: int | None = None, on_progress=None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Bundle]:
    """`window_scores`, and each window's novelty (see `novelty`) for a species model with a novelty
    fit (else None). A model judged by another's fit (`Bundle.novelty_judge`) gets, for each window,
    the novelty of the judge's window of the same hop that starts nearest to it."""
    bundle = resolve("rightwhale" if model is None else model)
    hop = bundle.features.window_s / 2 if hop_s is None else check_hop(hop_s)
    lanes = cpu_threads() if threads is None else max(1, threads)
    judge = bundle.novelty_judge if bundle.task != "detection" else None
    if judge is not None and judge is not bundle:
        starts, scores, _ = _scan(source, bundle, hop, sr, lanes, on_progress, False)
        at, _, novelty = _scan(source, judge, hop, sr, lanes, None, True)
        return starts, scores, novelty[_nearest(at, starts)], bundle
    return (*_scan(source, bundle, hop, sr, lanes, on_progress, judge is bundle), bundle)


def _nearest(at: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For each time of `t`, the index of the nearest time of `at` (sorted, not empty)."""
    if len(at) < 2:
        return np.zeros(len(t), dtype=int)
    j = np.clip(np.searchsorted(at, t), 1, len(at) - 1)
    return j - ((t - at[j - 1]) <= (at[j] - t)).astype(int)


def _scan(source, bundle: Bundle, hop: float, sr: int | None, lanes: int, on_progress, with_novelty: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(window starts, scores, novelty per window or None) of one bundle over a recording."""
    if bundle.task == "detection":
        score = bundle.detect
    elif with_novelty:
        def score(feats, threads=None):  # the probabilities and, in a last column, the window's novelty
            p, emb = bundle.predict_with_novelty(feats, threads=threads)
            return np.hstack([p, bundle.novelty.windows(emb, p)[:, None].astype(p.dtype)])
    else:
        score = bundle.predict
    starts, scores = [], []
    with _one_blas_thread():
        for s, p in _scored(source, bundle, hop, sr, 64, score, lanes):
            starts.append(s)
            scores.append(p)
            if on_progress is not None and len(s):
                on_progress(float(s[-1]) + bundle.features.window_s)
    if not scores:
        raise AudioError(f"{source if not isinstance(source, np.ndarray) else 'array input'}: nothing to scan")
    scores = np.concatenate(scores)
    if with_novelty:
        return np.concatenate(starts), scores[:, :-1], scores[:, -1]
    return np.concatenate(starts), scores, None


MAX_HOP_S = 86_400.0


def check_hop(hop_s: float) -> float:
    """A hop a scan can use: a finite number of seconds above 0 and at most a day."""
    from .errors import DeepdiveError

    if not (isinstance(hop_s, int | float) and 0 < hop_s <= MAX_HOP_S):
        raise DeepdiveError(f"hop {hop_s}: give the seconds between window starts, above 0 and at most {MAX_HOP_S:g}")
    return float(hop_s)


def window_count(duration_s: float, bundle: Bundle, hop_s: float | None = None) -> int:
    """About how many windows a scan of `duration_s` seconds scores (the hop rounded as the scan rounds it)."""
    cfg = bundle.features
    hop = cfg.window_s / 2 if hop_s is None else check_hop(hop_s)
    frame = getattr(cfg, "hop_length", 1) / cfg.sr  # spectrogram scans round the hop to whole frames
    return int(max(0.0, duration_s - cfg.window_s) // max(hop, frame)) + 2


def events_from_scores(starts: np.ndarray, scores: np.ndarray, bundle: Bundle, threshold: float | None = None,
                       duration_s: float | None = None, novelty: np.ndarray | None = None) -> list[Event]:
    """Merge consecutive windows above the threshold (same top species, for a species model). With
    `duration_s`, events are clamped to the recording: a window padded out beyond a short file's ends
    (it starts before 0, or ends after the last sample) gives an event within the file. With
    `novelty` (a species model's, per window), a window that sounds like none of the species the
    model knows (novelty above the card's threshold) makes no event."""
    window = bundle.features.window_s
    t = bundle.pick_threshold(threshold)
    if bundle.task == "detection":
        on, value = scores >= t, scores
        labels = [bundle.card["positive_label"]] * len(scores)
        sci = [""] * len(scores)
    else:
        top = scores.argmax(1)
        value = scores[np.arange(len(scores)), top]
        on = value >= t
        if novelty is not None and bundle.novelty_judge is not None:
            on &= novelty <= bundle.novelty_judge.novelty.threshold
        labels = [bundle.labels[i] for i in top]
        sci = [bundle.scientific_names[i] for i in top]
    events: list[Event] = []
    run: list[int] = []

    def close():
        if run:
            v = value[run]
            start, end = float(starts[run[0]]), float(starts[run[-1]] + window)
            if duration_s is not None:
                start, end = max(0.0, start), min(float(duration_s), end)
            events.append(Event(start, end, labels[run[0]], sci[run[0]], float(v.max()), float(v.mean()), len(run)))

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
    """Events of one recording: [{"start_s", "end_s", "label", "scientific_name", "peak", "mean", "windows"}],
    within the recording (0 to its duration)."""
    starts, scores, novelty, bundle = window_scores_and_novelty(source, model, hop_s, sr)
    return [e.__dict__ for e in events_from_scores(starts, scores, bundle, threshold, _duration(source, sr), novelty)]


def _duration(source, sr: int | None) -> float | None:
    if isinstance(source, np.ndarray | list | tuple):
        return len(source) / sr if sr else None
    return audio.info(source).duration_s


# ---------------------------------------------------------------- scanning files and folders


@dataclass
class FileResult:
    path: str
    duration_s: float
    events: list[dict]
    error: str = ""
    sample_rate: int = 0
    starts: np.ndarray | None = None  # window starts (s)
    scores: np.ndarray | None = None  # (n,) call probabilities or (n, n_labels) probabilities
    novelty: np.ndarray | None = None  # (n,) a species model's novelty per window, where it has a fit


def find_audio(paths, recursive: bool = False, errors: list | None = None) -> list[Path]:
    """The audio files named, and those inside the folders named (their subfolders too with `recursive`).

    A folder that cannot be listed is appended to `errors` as (path, message) when that list is given
    (else raised); a folder with no audio file but subfolders says to add --recursive."""
    from .datasets.folders import AUDIO_SUFFIXES
    from .errors import DeepdiveError

    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        try:
            found = list(p.rglob("*") if recursive else p.iterdir())
        except OSError as exc:
            message = f"{p}: cannot list the folder ({exc.strerror})"
            if errors is None:
                raise DeepdiveError(message) from None
            errors.append((p, message))
            continue
        audio_files = sorted(f for f in found if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
        if not audio_files and not recursive and any(f.is_dir() for f in found):
            raise DeepdiveError(f"{p}: no audio files in it, only subfolders; add --recursive to scan those")
        out += audio_files
    return out


def scan_file(path, model=None, hop_s: float | None = None, threshold: float | None = None,
              threads: int | None = None, on_progress=None) -> FileResult:
    """Window scores and events of one file; a file that cannot be read gives its error (no exception).
    `model` may be a bundle folder (so that worker processes and Dask workers load it themselves).
    `on_progress(seconds)`: how far into the file the scan is, after each batch of windows."""
    from .errors import DeepdiveError

    try:
        meta = audio.info(path)
        starts, scores, novelty, bundle = window_scores_and_novelty(path, model, hop_s, threads=threads,
                                                                     on_progress=on_progress)
        events = [e.__dict__ for e in events_from_scores(starts, scores, bundle, threshold, meta.duration_s, novelty)]
        return FileResult(str(path), meta.duration_s, events, "", meta.sr, starts, scores.astype(np.float32),
                          None if novelty is None else novelty.astype(np.float32))
    except DeepdiveError as exc:
        return FileResult(str(path), 0.0, [], str(exc))
    except OSError as exc:  # e.g. a file that cannot be opened for reading
        return FileResult(str(path), 0.0, [], f"{path}: {exc.strerror or exc}")


FORMATS = ("raven", "csv", "json", "parquet", "audacity")
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


def _safe_stem(path: str, limit: int = 80) -> str:
    """A file's stem fit for an output file name: at most `limit` characters, and undecodable bytes of
    a name that is not UTF-8 (Python's surrogate escapes) replaced, so names stay short and writable."""
    stem = Path(path).stem
    stem = stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\ufffd", "_")
    return stem[:limit] or "audio"


def _part_name(path: str) -> str:
    import hashlib

    return f"{_safe_stem(path)}-{hashlib.sha1(os.fsencode(path)).hexdigest()[:10]}"


def _output_names(files: list[Path], used: set[str]) -> dict[str, str]:
    """Each file's own output name (its Raven table is `<name>.selections.txt`, its Audacity labels
    `<name>.labels.txt`): the file's stem, or `<stem>-2`, `-3`... for a stem already taken by a file
    given earlier (same-named files of different folders), decided in the order the files were given,
    whatever order they finish in."""
    names = {}
    for f in files:
        stem = _safe_stem(str(f))
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}-{k}"
        used.add(name)
        names[str(f)] = name
    return names


def _outputs_there(out: Path, entry: dict) -> bool:
    """Whether a journalled file's own outputs are on disk (they are written without waiting for the
    disk; after a power cut a file can be empty though its journal line, which is, survived)."""
    names = ([f"parts/{entry['part']}.npz"] if entry.get("part") else []) + ([entry["raven"]] if entry.get("raven") else [])
    try:
        return all((out / n).stat().st_size > 0 for n in names)
    except OSError:
        return False


def _finish(result: FileResult, out: Path, formats, band, name: str, settings: dict, times=None) -> dict:
    """Write one file's own outputs (atomically), then its journal line: the line comes last, so a
    file whose line is there has all its outputs. `settings` (model, hop, threshold, timestamp
    format) go in the line: a rerun with other settings scans the file again. `times`
    (`timestamps.FileTimes`): events of a file whose name holds its start time get `start_utc` and
    `end_utc`, and the entry the file's `start_utc`."""
    from .outputs import audacity_labels, raven_table
    from .store import atomic_write_bytes, atomic_write_text

    start = times.start(result.path) if times is not None and not result.error else None
    if start is not None:
        from .timestamps import iso

        result.events = [{**e, "start_utc": iso(start, e["start_s"]), "end_utc": iso(start, e["end_s"])}
                         for e in result.events]
    entry = {**_identity(Path(result.path)), "duration_s": result.duration_s, "sample_rate": result.sample_rate,
             "events": result.events, "error": result.error, "part": "", "raven": "", "name": name, "settings": settings}
    if start is not None:
        entry["start_utc"] = iso(start)
    if not result.error:
        entry["part"] = _part_name(result.path)
        buf = io.BytesIO()
        np.savez(buf, starts=result.starts, scores=result.scores,
                 **({"novelty": result.novelty} if result.novelty is not None else {}))
        atomic_write_bytes(out / "parts" / f"{entry['part']}.npz", buf.getvalue(), durable=False)
        if "raven" in formats:
            entry["raven"] = f"{name}.selections.txt"
            atomic_write_text(out / entry["raven"], raven_table([_raven_file(result)], *band), durable=False)
        if "audacity" in formats:
            atomic_write_text(out / f"{name}.labels.txt", audacity_labels(result.events), durable=False)
    with open(out / JOURNAL, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return entry


def _results(files, model_ref, hop_s, threshold, workers: int, dask: str | None, within=None):
    """FileResults as they finish: in this process, in a process pool, or on a Dask cluster. A worker
    process gets its share of the CPUs; a Dask task one thread (a Dask worker runs a task per thread).
    In this process, `within(path, seconds)` is told how far into the file the scan is."""
    if dask:
        from distributed import Client, as_completed

        from .errors import DeepdiveError

        try:
            client = Client(dask, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise DeepdiveError(f"--dask {dask}: cannot reach the Dask scheduler ({str(exc).splitlines()[0][:120]}); "
                                "start one (dask scheduler) or check the address") from None
        with client:
            futures = client.map(scan_file, [str(f) for f in files], model=model_ref, hop_s=hop_s, threshold=threshold,
                                 threads=1, pure=False)
            for fut in as_completed(futures):
                yield fut.result()
        return
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            share = max(1, cpu_threads() // workers)
            futures = [pool.submit(scan_file, str(f), model_ref, hop_s, threshold, share) for f in files]
            for fut in as_completed(futures):
                yield fut.result()
        return
    yield from _local_results(files, model_ref, hop_s, threshold, within)


SHORT_FILE_S = 120.0


def _local_results(files, model_ref, hop_s, threshold, within=None, lanes: int | None = None):
    """FileResults in this process, in the order given. A long file is scanned with every lane (CPU)
    on stretches of it; short files (under SHORT_FILE_S), whose few windows give the lanes little to
    share, are scanned side by side instead, one lane each (a folder of Watkins cuts ran at about
    80x real time one at a time)."""
    lanes = cpu_threads() if lanes is None else lanes

    def progress_of(f):
        return (lambda s: within(str(f), s)) if within else None

    if lanes == 1 or len(files) == 1:
        for f in files:
            yield scan_file(f, model_ref, hop_s, threshold, on_progress=progress_of(f))
        return
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(lanes, thread_name_prefix="deepdive-files") as pool:
        for f in files:
            try:
                short = audio.info(f).duration_s < SHORT_FILE_S
            except Exception:  # noqa: BLE001 - scan_file reports what is wrong with the file
                short = True
            if short:
                pending.append(pool.submit(scan_file, f, model_ref, hop_s, threshold, 1))
                while len(pending) > 2 * lanes:
                    yield pending.popleft().result()
                continue
            while pending:
                yield pending.popleft().result()
            yield scan_file(f, model_ref, hop_s, threshold, lanes, on_progress=progress_of(f))
        while pending:
            yield pending.popleft().result()


def scan_files(paths, out, model=None, hop_s: float | None = None, threshold: float | None = None,
               formats=("raven", "csv", "json"), recursive: bool = False, progress=None, workers: int = 1,
               dask: str | None = None, timestamp_format: str | None = None) -> dict:
    """Scan files and folders into `out` and return the summary.

    Per file, as it finishes: `<stem>.selections.txt` (raven) and `parts/<stem>-<hash>.npz` (its window
    scores), then a line in `journal.jsonl`. A rerun on the same `out` skips every file the journal
    holds (same path, size and modification time), so an interrupted scan, even killed, goes on where it
    stopped. At the end, from the journal: `all.selections.txt`, `events.csv`, `events.json`,
    `windows.parquet` and `events.parquet`, `errors.csv` and `summary.json`, each written atomically.
    `progress(done_files, total_files, audio_seconds_done, within)` after each file, and in between
    as a file is scanned in this process (`workers` 1): `within` is (seconds of the file scanned, its
    duration), None after a file. `workers` > 1 spreads files over local processes; `dask`
    ("tcp://host:8786") sends them to a Dask cluster. `timestamp_format` (see `timestamps`): events
    also get absolute UTC times from the start time in their file's name."""

    from .errors import DeepdiveError
    from .timestamps import FileTimes

    times = FileTimes(timestamp_format) if timestamp_format else None

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
    listing_errors: list = []
    files = find_audio(paths, recursive, listing_errors)
    if not files and not listing_errors:
        raise DeepdiveError(f"{', '.join(map(str, paths))}: no audio files to scan (.wav, .aiff, .flac, ...)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeepdiveError(f"--out {out}: is a file, not a folder; choose a folder for the outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeepdiveError(f"--out {out}: cannot create the folder ({exc.strerror}); choose another --out") from None
    with _scan_lock(out):
        return _scan_into(files, listing_errors, out, bundle, model_ref, hop_s, threshold, formats, progress, workers, dask,
                          times)


@contextlib.contextmanager
def _scan_lock(out: Path):
    """One scan at a time writes into a folder: a second one started on it stops at once, saying so
    (two scans would both do all the work and interleave the journal)."""
    import fcntl

    from .errors import DeepdiveError

    try:
        handle = open(out / ".scan.lock", "a")
    except OSError as exc:
        raise DeepdiveError(f"--out {out}: cannot write in the folder ({exc.strerror}); choose another --out") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeepdiveError(f"--out {out}: another scan is writing into this folder; wait for it to finish or "
                                "choose another --out") from None
        yield
    finally:
        handle.close()


def _scan_into(files, listing_errors, out: Path, bundle, model_ref, hop_s, threshold, formats, progress, workers, dask,
               times=None) -> dict:
    import time

    band = (float(getattr(bundle.features, "fmin", 0.0)), float(getattr(bundle.features, "fmax", bundle.features.sr / 2)))
    journal = _read_journal(out)
    from .store import atomic_write_text

    # rewrite the journal with its whole lines only: a line cut short by a kill must not swallow the next
    atomic_write_text(out / JOURNAL, "".join(json.dumps(e) + "\n" for e in journal.values()))
    settings = {"model": model_ref, "hop_s": hop_s, "threshold": bundle.pick_threshold(threshold)}
    if times is not None:
        settings["timestamp_format"] = times.pattern
    done = {str(f): journal[str(f)] for f in files if str(f) in journal and journal[str(f)].get("settings") == settings
            and {k: journal[str(f)][k] for k in ("size", "mtime_ns")} == {k: _identity(f)[k] for k in ("size", "mtime_ns")}
            and _outputs_there(out, journal[str(f)])}
    todo = [f for f in files if str(f) not in done]
    names = _output_names(todo, {e.get("name") or Path(e["raven"]).name.removesuffix(".selections.txt")
                                 for e in done.values() if e.get("name") or e.get("raven")})
    seconds = sum(e["duration_s"] for e in done.values())
    t0 = time.perf_counter()
    scanned_s = 0.0
    if progress:
        progress(len(done), len(files), seconds, None)
    within = None
    if progress and workers == 1 and not dask:
        durations: dict[str, float] = {}

        def within(path: str, file_s: float) -> None:
            if path not in durations:
                try:
                    durations[path] = audio.info(path).duration_s
                except Exception:  # noqa: BLE001 - only for the progress line; the scan reports the error
                    durations[path] = 0.0
            progress(len(done), len(files), seconds + file_s, (file_s, durations[path]))

    for r in _results(todo, model_ref, hop_s, threshold, workers, dask, within):
        done[r.path] = _finish(r, out, formats, band, names[r.path], settings, times)
        seconds += r.duration_s
        scanned_s += r.duration_s
        if progress:
            progress(len(done), len(files), seconds, None)
    elapsed = time.perf_counter() - t0
    entries = [done[str(f)] for f in files]
    entries += [{"file": str(p), "duration_s": 0.0, "events": [], "error": message, "part": "", "raven": ""}
                for p, message in listing_errors]
    summary = _write_run_outputs(entries, out, formats, band, bundle, times is not None)
    if times is not None:
        summary["timestamp_format"] = times.pattern
        summary["files_without_timestamp"] = [e["file"] for e in entries if not e["error"] and "start_utc" not in e]
    summary.update({"threshold": settings["threshold"], "resumed_files": len(files) - len(todo),
                    "seconds": round(elapsed, 2),
                    "times_real_time": round(scanned_s / elapsed, 1) if elapsed > 0 and scanned_s else None,
                    "workers": workers, "dask": dask or ""})
    from .store import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    return summary


def _raven_file(r: FileResult) -> tuple:
    """(absolute path, duration, events, sample rate) of a file for `outputs.raven_table`."""
    return os.path.abspath(r.path), r.duration_s, r.events, r.sample_rate or None


def _write_run_outputs(entries: list[dict], out: Path, formats, band, bundle: Bundle, timed: bool = False) -> dict:
    from .outputs import errors_csv, events_csv, events_json, raven_table, summary_csv
    from .store import atomic_write_bytes, atomic_write_text

    results = [FileResult(e["file"], e["duration_s"], e["events"], e["error"], e.get("sample_rate", 0)) for e in entries]
    ok = [r for r in results if not r.error]
    if "raven" in formats:
        atomic_write_text(out / "all.selections.txt", raven_table([_raven_file(r) for r in ok], *band))
    starts = {e["file"]: e.get("start_utc", "") for e in entries} if timed else None
    atomic_write_text(out / "summary.csv", summary_csv(results, bundle.labels if bundle.task != "detection"
                                                       else [bundle.card["positive_label"]], starts))
    if "csv" in formats:
        atomic_write_text(out / "events.csv", events_csv(ok, timed))
    if "json" in formats:
        atomic_write_text(out / "events.json", events_json(ok, SCHEMA_VERSION, str(bundle.path)))
    if "parquet" in formats:
        from .outputs import events_parquet, windows_parquet

        parts = [(e["file"], np.load(out / "parts" / f"{e['part']}.npz")) for e in entries if not e["error"]]
        atomic_write_bytes(out / "windows.parquet", windows_parquet(parts, bundle))
        atomic_write_bytes(out / "events.parquet", events_parquet(ok, timed))
    atomic_write_text(out / "errors.csv", errors_csv(results))
    return {
        "schema": SCHEMA_VERSION, "model": str(bundle.path), "task": bundle.task, "files": len(results),
        "failed": len(results) - len(ok), "audio_hours": round(sum(r.duration_s for r in ok) / 3600, 4),
        "events": sum(len(r.events) for r in ok),
    }
