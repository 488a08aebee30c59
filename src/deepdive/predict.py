"""Ranking and detection: which species does a recording hold, and does a right whale call in it.

A recording is cut into the model's windows exactly as training cut it (consecutive windows; a
last remainder of at least `min_last_s` kept; shorter recordings padded, here centred so the answer
is deterministic, with zeros or by mirroring as the model's card says), and each window goes through
the model. A ranking is the mean of the windows' probabilities; a detection is the highest window
probability (a call anywhere in the file counts). Long files are streamed: memory does not grow
with their length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import audio
from .bundle import Bundle, resolve
from .errors import AudioError, DeepdiveError
from .windows import centre_pad, slice_windows


def window_features(
    source: str | Path | np.ndarray, bundle: Bundle, sr: int | None = None, batch: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (start times in s, features) batches of a file or an array (with its `sr`)."""
    feats_cfg = bundle.features
    prep = bundle.card.get("prepare", {})
    min_last = int(round(float(prep.get("min_last_s", 3.0)) * feats_cfg.sr))
    mirror = prep.get("pad") == "mirror"
    starts, feats = [], []
    blocks = audio.blocks(source, feats_cfg.sr, sr)
    for start, y in slice_windows(blocks, feats_cfg.window_samples, min_last, lambda seg, n: centre_pad(seg, n, mirror)):
        starts.append(start / feats_cfg.sr)
        feats.append(feats_cfg.compute(y, feats_cfg.sr))
        if len(feats) == batch:
            yield np.array(starts), np.stack(feats)
            starts, feats = [], []
    if feats:
        yield np.array(starts), np.stack(feats)


def _scored_windows(source, bundle: Bundle, sr: int | None, score, what: str) -> tuple[np.ndarray, np.ndarray]:
    starts, scores = [], []
    for s, f in window_features(source, bundle, sr):
        starts.append(s)
        scores.append(score(f))
    if not scores:
        raise AudioError(f"{source if isinstance(source, str | Path) else 'array input'}: too short to {what}")
    return np.concatenate(starts), np.concatenate(scores)


def window_probabilities(source, model=None, sr: int | None = None) -> tuple[np.ndarray, np.ndarray, Bundle]:
    """(window start times, window probabilities (n, n_labels), bundle) of one recording."""
    bundle = resolve(model, "species")
    return (*_scored_windows(source, bundle, sr, bundle.predict, "rank"), bundle)


def ranking_from_probabilities(probs: np.ndarray, bundle: Bundle, top: int | None = None,
                               min_confidence: float | None = None) -> list[dict]:
    """The species by probability, most probable first: the `top` first, those at or above
    `min_confidence` (possibly none)."""
    p = probs / probs.sum()
    order = np.argsort(-p, kind="stable")
    if top:
        order = order[:top]
    if min_confidence is not None:
        order = [i for i in order if p[i] >= min_confidence]
    return [
        {"species": bundle.labels[i], "scientific_name": bundle.scientific_names[i], "probability": float(p[i])}
        for i in order
    ]


def classify(
    path_or_array: str | Path | np.ndarray, sr: int | None = None, model: str | Path | Bundle | None = None,
    top: int | None = None, min_confidence: float | None = None,
) -> list[dict]:
    """Rank every species the model knows for one recording, most to least probable (only the `top`
    first, and only those with a probability of at least `min_confidence`, when given).

    `path_or_array`: a file path, or samples with their `sr` (an array or a list: 1-D, or 2-D with
    the longer axis as time, channels averaged; integers are PCM, full scale 1.0). `model`: a bundle
    folder or None for the bundled species model. Returns
    `[{"species": ..., "scientific_name": ..., "probability": ...}, ...]`; the probabilities of the
    full ranking sum to 1.
    """
    _, probs, bundle = window_probabilities(path_or_array, model, sr)
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise DeepdiveError(f"min_confidence {min_confidence}: give a probability from 0 to 1")
    return ranking_from_probabilities(probs.mean(axis=0), bundle, top, min_confidence)


def window_detections(source, model=None, sr: int | None = None) -> tuple[np.ndarray, np.ndarray, Bundle]:
    """(window start times, probability of a call per window, bundle) of one recording."""
    bundle = resolve(model, "detection")
    return (*_scored_windows(source, bundle, sr, bundle.detect, "scan"), bundle)


def detect(path_or_array: str | Path | np.ndarray, sr: int | None = None, model: str | Path | Bundle | None = None) -> float:
    """Probability that a right whale calls in a clip (for a longer file: in its likeliest window).

    `path_or_array`: a file path, or an array with its `sr`; any sample rate is resampled to the
    detector's (2 kHz for the bundled one). `model`: a detector bundle folder, or None for the
    bundled right-whale detector.
    """
    _, probs, _ = window_detections(path_or_array, model, sr)
    return float(probs.max())
