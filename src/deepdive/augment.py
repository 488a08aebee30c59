"""Augmentations for training windows: white noise at an SNR, random gain, time shift, and another
recorder's background mixed in.

Each is a small function of (samples, rng) so the preparation plan can record exactly what it did.
`BackgroundMix` breaks the recorder cue of a detector trained on several sources: a call from one
recorder heard over the noise of another (Watkins tape calls over Cornell buoy noise, buoy calls over
tape backgrounds), so that no background tells the label. It is built once from a pool of background
clips (validated then), draws its choices from the rng it is given, and costs one addition per window.
"""

from __future__ import annotations

import numpy as np


def white_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise so that signal power / noise power = snr_db."""
    power = float(np.mean(y.astype(np.float64) ** 2))
    if power <= 0:
        power = 1e-8
    noise = rng.standard_normal(len(y)).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return (y + noise).astype(np.float32)


def gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by gain_db decibels (clipped to [-1, 1] like a recorder would)."""
    return np.clip(y * np.float32(10 ** (gain_db / 20)), -1.0, 1.0).astype(np.float32)


def time_shift(y: np.ndarray, shift: int) -> np.ndarray:
    """Circular shift by `shift` samples (positive: later)."""
    return np.roll(y, shift).astype(np.float32, copy=False)


def random_noise_and_gain(
    y: np.ndarray,
    rng: np.random.Generator,
    snr_db: tuple[float, float] = (10.0, 30.0),
    gain_db: tuple[float, float] = (-6.0, 6.0),
) -> tuple[np.ndarray, dict]:
    """Deep Dive's augmentation of extra slices: white noise at a random SNR, then a random gain."""
    snr = float(rng.uniform(*snr_db))
    g = float(rng.uniform(*gain_db))
    return gain(white_noise(y, snr, rng), g), {"snr_db": round(snr, 2), "gain_db": round(g, 2)}


def mix_at_snr(y: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """`y` plus `background` (as long as `y`) scaled so that power(y) / power(background) = snr_db."""
    p_y = float(np.mean(y.astype(np.float64) ** 2))
    p_b = float(np.mean(background.astype(np.float64) ** 2))
    if p_b <= 0:
        return y.astype(np.float32, copy=False)
    scale = np.sqrt(max(p_y, 1e-12) / p_b / 10 ** (snr_db / 10))
    return (y + background * np.float32(scale)).astype(np.float32)


class BackgroundMix:
    """Mix a background clip of another source under a window, at a random SNR.

    `pool` maps a source name to background clips (1-D arrays at the windows' sample rate, each at
    least a window long); a window of source s gets a clip of another source, drawn at random, a
    random stretch of it, at an SNR drawn from `snr_db` (window power over background power)."""

    def __init__(self, pool: dict[str, list[np.ndarray]], snr_db: tuple[float, float] = (0.0, 15.0),
                 window: int | None = None) -> None:
        lo, hi = snr_db
        if not lo <= hi:
            raise ValueError(f"snr_db {snr_db}: the lower bound must not exceed the upper one")
        self.pool = {s: [np.asarray(c, np.float32) for c in clips] for s, clips in pool.items() if clips}
        if window is not None and any(len(c) < window for clips in self.pool.values() for c in clips):
            raise ValueError(f"every background clip must be at least {window} samples long")
        self.snr_db = (float(lo), float(hi))

    def can_mix(self, source: str) -> bool:
        """Whether some other source has backgrounds for a window of `source`."""
        return any(s != source for s in self.pool)

    def __call__(self, y: np.ndarray, source: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        others = sorted(s for s in self.pool if s != source)
        if not others:
            return y, {}
        other = others[int(rng.integers(len(others)))]
        i = int(rng.integers(len(self.pool[other])))
        clip = self.pool[other][i]
        start = int(rng.integers(0, len(clip) - len(y) + 1))
        snr = float(rng.uniform(*self.snr_db))
        return mix_at_snr(y, clip[start : start + len(y)], snr), {"background": f"{other}#{i}", "mix_snr_db": round(snr, 2)}
