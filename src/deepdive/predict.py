"""Ranking: which species does a recording hold, most to least probable.

A recording is cut into the model's windows exactly as training cut it (consecutive windows; a
last remainder of at least `min_last_s` kept; shorter recordings padded, here centred so the answer
is deterministic), each window is ranked by the model, and the recording's probabilities are the
mean of its windows'. Long files are streamed: memory does not grow with their length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import audio
from .bundle import Bundle, resolve
from .errors import AudioError
from .features.spectrogram import log_mel
from .prepare import slice_windows


def _centre_pad(seg: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    out = np.zeros(n, dtype=np.float32)
    start = (n - len(seg)) // 2
    out[start : start + len(seg)] = seg
    return out, start


def window_features(
    source: str | Path | np.ndarray, bundle: Bundle, sr: int | None = None, batch: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (start times in s, features) batches of a file or an array (with its `sr`)."""
    mel = bundle.mel
    min_last = int(round(float(bundle.card.get("prepare", {}).get("min_last_s", 3.0)) * mel.sr))
    if isinstance(source, np.ndarray):
        if sr is None:
            raise AudioError("array input: give its sample rate, e.g. classify(samples, sr=48000)")
        if not (audio.MIN_SR <= sr <= audio.MAX_SR):
            raise AudioError(f"array input: sample rate {sr} Hz is outside {audio.MIN_SR}-{audio.MAX_SR} Hz")
        y = audio.resample(audio.check_samples(np.asarray(source, dtype=np.float32), "array input"), sr, mel.sr)
        blocks: Iterator[np.ndarray] = iter([y])
    else:
        blocks = (b for _, b, _ in audio.stream(source, block_s=60.0, sr=mel.sr))
    starts, feats = [], []
    for start, y in slice_windows(blocks, mel.window_samples, min_last, _centre_pad):
        starts.append(start / mel.sr)
        feats.append(log_mel(y, mel.sr, mel))
        if len(feats) == batch:
            yield np.array(starts), np.stack(feats)
            starts, feats = [], []
    if feats:
        yield np.array(starts), np.stack(feats)


def window_probabilities(source, model=None, sr: int | None = None) -> tuple[np.ndarray, np.ndarray, Bundle]:
    """(window start times, window probabilities (n, n_labels), bundle) of one recording."""
    bundle = resolve(model, "species")
    starts, probs = [], []
    for s, f in window_features(source, bundle, sr):
        starts.append(s)
        probs.append(bundle.predict(f))
    if not probs:
        raise AudioError(f"{source if not isinstance(source, np.ndarray) else 'array input'}: too short to rank")
    return np.concatenate(starts), np.concatenate(probs), bundle


def ranking_from_probabilities(probs: np.ndarray, bundle: Bundle, top: int | None = None) -> list[dict]:
    p = probs / probs.sum()
    order = np.argsort(-p, kind="stable")
    if top:
        order = order[:top]
    return [
        {"species": bundle.labels[i], "scientific_name": bundle.scientific_names[i], "probability": float(p[i])}
        for i in order
    ]


def classify(
    path_or_array: str | Path | np.ndarray, sr: int | None = None, model: str | Path | Bundle | None = None,
    top: int | None = None,
) -> list[dict]:
    """Rank every species the model knows for one recording, most to least probable.

    `path_or_array`: a file path, or a 1-D (or (n, channels)) array with its `sr`. `model`: a bundle
    folder or None for the bundled species model. Returns
    `[{"species": ..., "scientific_name": ..., "probability": ...}, ...]`; the probabilities of the
    full ranking sum to 1.
    """
    _, probs, bundle = window_probabilities(path_or_array, model, sr)
    return ranking_from_probabilities(probs.mean(axis=0), bundle, top)
