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


class Ranking(list):
    """A ranking: a list of {"species", "scientific_name", "probability"}, most probable first, with
    `known` (whether the recording sounds like any species the model knows; None for a model without
    a novelty fit) and `novelty` (0 to 1, higher = less like anything it knows; see `novelty`)."""

    known: bool | None = None
    novelty: float | None = None

    def as_dict(self) -> dict:
        return {"ranking": list(self), "known": self.known, "novelty": self.novelty}


def _probabilities_and_novelty(source, bundle: Bundle, sr: int | None) -> tuple[np.ndarray, float | None]:
    """Window probabilities of a recording and its novelty (None for a bundle without a novelty fit or
    a judge: `Bundle.novelty_judge`, whose own windows of the recording it then is)."""
    judge = bundle.novelty_judge
    probs, embs = [], []
    for _, f in window_features(source, bundle, sr):
        p, e = bundle.predict_with_novelty(f)
        probs.append(p)
        embs.append(e)
    if not probs:
        raise AudioError(f"{source if isinstance(source, str | Path) else 'array input'}: too short to rank")
    if judge is None:
        novelty = None
    elif judge is bundle:
        novelty = bundle.novelty.recording(np.concatenate(embs), np.concatenate(probs))
    else:
        novelty = _probabilities_and_novelty(source, judge, sr)[1]
    return np.concatenate(probs), novelty


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
) -> Ranking:
    """Rank every species the model knows for one recording, most to least probable (only the `top`
    first, and only those with a probability of at least `min_confidence`, when given).

    `path_or_array`: a file path, or samples with their `sr` (an array or a list: 1-D, or 2-D with
    the longer axis as time, channels averaged; integers are PCM, full scale 1.0). `model`: a bundle
    folder or None for the bundled species model. Returns
    `[{"species": ..., "scientific_name": ..., "probability": ...}, ...]` (a `Ranking`: a list that
    also has `.known` and `.novelty`); the probabilities of the full ranking sum to 1.
    """
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise DeepdiveError(f"min_confidence {min_confidence}: give a probability from 0 to 1")
    bundle = resolve(model, "species")
    probs, novelty = _probabilities_and_novelty(path_or_array, bundle, sr)
    ranking = Ranking(ranking_from_probabilities(probs.mean(axis=0), bundle, top, min_confidence))
    if novelty is not None:
        ranking.novelty = round(novelty, 6)  # a threshold chosen out of fold can sit at 0.99999
        ranking.known = bool(novelty <= bundle.novelty_judge.novelty.threshold)
    return ranking


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
