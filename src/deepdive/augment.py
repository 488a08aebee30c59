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


# --- A random recorder, in the spectrogram -------------------------------------------------------------
# The species models read dB spectrograms (peak 0, floor -top_db), and what tells one Watkins recorder
# from another there is the frequency response (a tape deck's roll-off, a hydrophone's resonance), the
# band limits (the sample rate it was digitised at), the noise floor and its colour, and mains hum. A
# window heard "through a random recorder" gets each of these drawn at random, so no one of them can
# stand for a species. It works on the batch the training loop reads, so a store is prepared once.

def _smooth_curve(n_bands: int, rng: np.random.Generator, peak_to_peak: float) -> np.ndarray:
    """A random smooth curve over the bands (three cosines of falling weight), `peak_to_peak` dB high."""
    b = np.linspace(0.0, 1.0, n_bands)
    curve = sum(rng.uniform(-1, 1) / k * np.cos(np.pi * k * b + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3))
    span = float(curve.max() - curve.min())
    return (curve - curve.mean()) * (peak_to_peak / span if span > 0 else 0.0)


def _power_sum_db(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """dB of the summed powers of two dB arrays."""
    hi = np.maximum(a, b)
    return hi + 10.0 * np.log10(1.0 + 10.0 ** ((np.minimum(a, b) - hi) / 10.0))


def recorder_response(
    x: np.ndarray,
    rng: np.random.Generator,
    p: float,
    top_db: float = 80.0,
    eq_db: float = 18.0,
    noise: np.ndarray | None = None,
    noise_db: tuple[float, float] = (-45.0, -10.0),
    band_limits: bool = True,
) -> np.ndarray:
    """Each window of a batch of dB spectrograms `x` (n, bands, frames) is, with probability `p`,
    heard through a random recorder:

    - a frequency response: a smooth random curve up to `eq_db` dB peak to peak;
    - with probability 0.5, noise under it at `noise_db` dB below the window's peak: a window of real
      background from `noise` (n_noise, bands, frames; rolled in time at random) half of the time
      when given, else coloured noise (a random slope and curve, flickering frame to frame);
    - with probability 0.25, one or two hum lines (steady narrow bands);
    - with probability 0.5 the bands above a random one (25-100% kept) and with probability 0.25
      those below a random one (up to 15% lost) at the floor, as a lower sample rate or a high-pass
      filter would leave them (`band_limits=False`: never; the draws are made all the same, so the
      other changes of a seeded run stay as they were).

    The window is then put back on the features' scale (peak 0 in the bands kept, floor -top_db). A new array is
    returned; windows not drawn are unchanged."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"recorder augmentation probability {p}: give a number from 0 to 1")
    out = np.array(x, dtype=np.float32, copy=True)
    if out.ndim != 3 or p == 0.0:
        return out
    n, f, t = out.shape
    floor = -float(top_db)
    for i in np.flatnonzero(rng.random(n) < p):
        w = out[i].astype(np.float64) + _smooth_curve(f, rng, rng.uniform(0.0, eq_db))[:, None]
        if rng.random() < 0.5:
            level = w.max() + rng.uniform(*noise_db)
            if noise is not None and len(noise) and rng.random() < 0.5:
                nz = np.roll(noise[int(rng.integers(len(noise)))].astype(np.float64), int(rng.integers(t)), axis=1)
                nz = nz - nz.max()
            else:
                slope = np.linspace(0.0, -rng.uniform(0.0, 30.0), f)[:, None]
                nz = slope + _smooth_curve(f, rng, rng.uniform(0.0, 12.0))[:, None] + rng.normal(0.0, 2.5, (f, t))
                nz = nz - nz.max()
            w = _power_sum_db(w, nz + level)
        if rng.random() < 0.25:
            for _ in range(int(rng.integers(1, 3))):
                band = int(rng.integers(f))
                w[band] = _power_sum_db(w[band], np.full(t, w.max() + rng.uniform(-40.0, -10.0)))
        if rng.random() < 0.5:
            top = int(rng.integers(max(1, f // 4), f + 1))
            if band_limits:
                w[top:] = -np.inf
        if rng.random() < 0.25:
            bottom = int(rng.integers(0, max(1, int(0.15 * f)) + 1))
            if band_limits:
                w[:bottom] = -np.inf
        out[i] = np.maximum(w - w.max(), floor)
    return out


def noise_paths(source: str, limit: int = 512, seed: int = 0) -> list[str]:
    """The background recordings that training takes from `source` (see `noise_windows`): at most
    `limit` files drawn at random (seeded), so a benchmark can leave exactly these out."""
    from pathlib import Path

    from .errors import DatasetError

    root = Path(source)
    if (root / "train.csv").is_file():
        from .datasets.kaggle import POSITIVE, load_kaggle

        paths = [r.path for r in load_kaggle(root) if r.label != POSITIVE]
    elif root.is_dir():
        from .datasets.folders import AUDIO_SUFFIXES

        paths = sorted(str(q) for q in root.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES)
    else:
        raise DatasetError(f"{source}: not a folder of noise recordings")
    if not paths:
        raise DatasetError(f"{source}: no noise recordings found")
    rng = np.random.default_rng(seed)
    return [paths[j] for j in sorted(rng.choice(len(paths), size=min(limit, len(paths)), replace=False))]


def noise_windows(source: str, features, limit: int = 512, seed: int = 0, pad: str = "mirror") -> np.ndarray:
    """Feature windows (n, bands, frames) of background recordings, for `recorder_response` and for
    outlier exposure in training.

    `source` is a challenge folder (train.csv: its noise clips are taken) or any folder of audio files
    (all of them; they must hold no call the model learns). Each file gives its first window; a
    shorter file is mirrored to a window's length (`pad` "mirror": background to mix under a window)
    or placed at random in it as a store pads its short recordings (`pad` "zeros" or "noise", as the
    store's preparation says: an outlier window as the model will meet it). At most `limit` files,
    drawn at random (`noise_paths`)."""
    from .audio import load
    from .windows import mirror_pad, random_pad

    n = int(round(features.window_s * features.sr))
    rng = np.random.default_rng(seed)
    wins = []
    for path in noise_paths(source, limit, seed):
        y, _ = load(path, sr=features.sr, duration_s=features.window_s)
        if len(y) < n:
            y = mirror_pad(y, n, 0) if pad == "mirror" else random_pad(y, n, rng, pad)[0]
        wins.append(features.compute(y[:n], features.sr))
    return np.stack(wins).astype(np.float32)
