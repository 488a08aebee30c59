"""Cutting a recording into a model's windows, the same way for training (`prepare`) and for
prediction (`predict`): consecutive windows of the model's length; a last remainder of at least
`min_last` samples kept, padded to a whole window; a recording shorter than one window padded. The
padding differs only in where the segment goes: at random in training (`random_pad`), in the middle
in prediction (`centre_pad`); with zeros, faint noise or the segment mirrored (`mirror_pad`), as the
model's card says.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def mirror_pad(seg: np.ndarray, n: int, start: int) -> np.ndarray:
    """`seg` placed at `start` in `n` samples, the rest filled by mirroring it (repeatedly if short)."""
    length = len(seg)
    m = (np.arange(n) - start) % (2 * length)
    idx = np.where(m < length, m, 2 * length - 1 - m)
    return np.asarray(seg, dtype=np.float32)[idx]


def random_pad(seg: np.ndarray, n: int, rng: np.random.Generator, mode: str) -> tuple[np.ndarray, int]:
    """`seg` at a random position inside `n` samples (training: the call is not always in the middle),
    the rest mirrored (`mode` "mirror"), faint noise ("noise") or zeros; returns (window, position)."""
    start = int(rng.integers(0, n - len(seg) + 1))
    if mode == "mirror":
        return mirror_pad(seg, n, start), start
    if mode == "noise":
        level = float(np.std(seg)) * 0.05 + 1e-6
        out = (rng.standard_normal(n) * level).astype(np.float32)
    else:
        out = np.zeros(n, dtype=np.float32)
    out[start : start + len(seg)] = seg
    return out, start


def slice_windows(
    blocks, n: int, min_last: int, pad
) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive windows of `n` samples from a stream of sample blocks: (start sample, window).

    A last remainder of at least `min_last` samples (or the whole input, when shorter than one
    window) is padded by `pad(segment, n) -> (window, position)`; its start is then negative or
    earlier than the segment by the padding before it.
    """
    buf = np.zeros(0, dtype=np.float32)
    consumed = 0
    emitted = False
    for block in blocks:
        buf = np.concatenate([buf, block]) if len(buf) else np.asarray(block, dtype=np.float32)
        while len(buf) >= n:
            yield consumed, buf[:n].copy()
            emitted = True
            buf, consumed = buf[n:], consumed + n
    if len(buf) and (len(buf) >= min_last or not emitted):
        padded, start = pad(buf, n)
        yield consumed - start, padded


def centre_pad(seg: np.ndarray, n: int, mirror: bool = False) -> tuple[np.ndarray, int]:
    """`seg` in the middle of `n` samples (prediction: the same answer every time), mirrored or zeros
    around it; returns (window, position)."""
    start = (n - len(seg)) // 2
    if mirror:
        return mirror_pad(seg, n, start), start
    out = np.zeros(n, dtype=np.float32)
    out[start : start + len(seg)] = seg
    return out, start
