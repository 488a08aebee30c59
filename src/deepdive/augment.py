"""Augmentations for training windows: white noise at an SNR, random gain, time shift, band limit.

Each is a small function of (samples, rng) so the preparation plan can record exactly what it did.
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
