"""Ordinal (Bandt-Pompe) measures and complexity-entropy series, vectorised over many series at once.

Bandt and Pompe (2002): slide a window of `dx` values, `tau` samples apart, over a series; each
window's ordinal pattern is the permutation that sorts it (equal values keep their order of
appearance, a stable sort, as ordpy does; `tie_precision` rounds the data first, like ordpy's). The
pattern frequencies form a distribution P over dx! states. From P:

- normalised permutation entropy H = S(P) / ln n (Shannon; n the number of states);
- Jensen-Shannon statistical complexity C = H * JS(P, U) / JS_max (Rosso et al. 2007);
- Tsallis q-entropy H_q and q-complexity C_q over a range of q (Ribeiro et al. 2017, Phys. Rev. E 95,
  062106, equations 10-11);
- Renyi alpha-entropy and alpha-complexity (Jauregui et al. 2018, Physica A 498, 74-85).

Every measure takes a matrix of distributions (m, n) and returns m values, so thousands of frames cost
a few array operations. Tests check the values against ordpy's for the same inputs.

`OrdinalConfig` turns a window of audio into a complexity-entropy series (channels = measures,
length = time frames), the input of the Inception 1D detectors: for every STFT frame, (a) the
frame's power spectrum taken as a distribution over frequency bins (as the Whale Sound Detection seed
did) and (b) Bandt-Pompe over the frame's spectrum read as a series along frequency; and (c)
Bandt-Pompe over the waveform in sliding windows aligned with the frames.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from .spectrogram import Windowed, _frames_power, stft_bins

# ---------------------------------------------------------------- patterns


@lru_cache(maxsize=8)
def _pattern_lookup(dx: int) -> np.ndarray:
    """Map a permutation's base-dx code to its index among the dx! permutations (lexicographic)."""
    if dx < 2 or dx > 8:
        raise ValueError(f"embedding dimension dx={dx} must be between 2 and 8")
    lookup = np.full(dx**dx, -1, dtype=np.int64)
    powers = dx ** np.arange(dx - 1, -1, -1)
    for i, perm in enumerate(itertools.permutations(range(dx))):
        lookup[int(np.dot(perm, powers))] = i
    lookup.setflags(write=False)
    return lookup


def ordinal_patterns(x: np.ndarray, dx: int = 3, tau: int = 1, tie_precision: int | None = None) -> np.ndarray:
    """Index (0..dx!-1) of the ordinal pattern of every window of the last axis: shape (..., L-(dx-1)tau)."""
    x = np.asarray(x, dtype=np.float64)
    if tie_precision is not None:
        x = np.round(x, tie_precision)
    span = (dx - 1) * tau + 1
    if x.shape[-1] < span:
        raise ValueError(f"series of length {x.shape[-1]} is shorter than one window (dx={dx}, tau={tau})")
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=-1)[..., ::tau]
    perms = np.argsort(windows, axis=-1, kind="stable")
    codes = perms @ (dx ** np.arange(dx - 1, -1, -1))
    return _pattern_lookup(dx)[codes]


def ordinal_distribution(x: np.ndarray, dx: int = 3, tau: int = 1, tie_precision: int | None = None) -> np.ndarray:
    """Pattern probabilities over all dx! states (missing patterns count 0): shape (..., dx!)."""
    idx = ordinal_patterns(x, dx, tau, tie_precision)
    n = math.factorial(dx)
    flat = idx.reshape(-1, idx.shape[-1])
    rows = np.arange(flat.shape[0])[:, None] * n
    counts = np.bincount((rows + flat).ravel(), minlength=flat.shape[0] * n).reshape(flat.shape[0], n)
    probs = counts / flat.shape[1]
    return probs.reshape(*idx.shape[:-1], n)


# ---------------------------------------------------------------- measures of distributions


def _as_probs(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p[None, :] if p.ndim == 1 else p


def _xlogx(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def _logq(x: np.ndarray | float, q: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.log(x) if q == 1 else (x ** (1 - q) - 1) / (1 - q)


def permutation_entropy(p: np.ndarray) -> np.ndarray:
    """Normalised Shannon entropy of each row of distributions (m, n): values in [0, 1]."""
    p = _as_probs(p)
    return -_xlogx(p).sum(-1) / np.log(p.shape[-1])


def _js_max(n: int) -> float:
    return -0.5 * (((n + 1) / n) * np.log(n + 1) + np.log(n) - 2 * np.log(2 * n))


def statistical_complexity(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, C): normalised entropy and Jensen-Shannon statistical complexity of each row."""
    p = _as_probs(p)
    n = p.shape[-1]
    h = permutation_entropy(p)
    mid = (p + 1.0 / n) / 2
    js = -_xlogx(mid).sum(-1) + _xlogx(p).sum(-1) / 2 - np.log(n) / 2
    return h, h * js / _js_max(n)


def tsallis_entropy(p: np.ndarray, q: float) -> np.ndarray:
    """Normalised Tsallis q-entropy of each row (q = 1 gives the Shannon entropy)."""
    p = _as_probs(p)
    n = p.shape[-1]
    if q == 1:
        return permutation_entropy(p)
    safe = np.where(p > 0, p, 1.0)
    return np.where(p > 0, p * _logq(1.0 / safe, q), 0.0).sum(-1) / _logq(float(n), q)


def _jt_max(n: int, q: float) -> float:
    if q == 1:
        return _js_max(n)
    return ((2 ** (2 - q)) * n - (1 + n) ** (1 - q) - n * (1 + 1 / n) ** (1 - q) - n + 1) / ((1 - q) * (2 ** (2 - q)) * n)


def tsallis_complexity(p: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(H_q, C_q): Tsallis q-entropy and q-complexity (Jensen-Tsallis divergence) of each row."""
    p = _as_probs(p)
    n = p.shape[-1]
    if q == 1:
        return statistical_complexity(p)
    h = tsallis_entropy(p, q)
    u = 1.0 / n
    safe = np.where(p > 0, p, 1.0)
    first = -0.5 * np.where(p > 0, p * _logq((u + safe) / (2 * safe), q), 0.0).sum(-1)
    second = -(0.5 / n) * _logq(n * (u + p) / 2, q).sum(-1)  # a missing state adds ln_q(1/2)
    return h, h * (first + second) / _jt_max(n, q)


def renyi_entropy(p: np.ndarray, alpha: float) -> np.ndarray:
    """Normalised Renyi alpha-entropy of each row (alpha = 1 gives the Shannon entropy)."""
    p = _as_probs(p)
    n = p.shape[-1]
    if alpha == 1:
        return permutation_entropy(p)
    powers = np.where(p > 0, np.where(p > 0, p, 1.0) ** alpha, 0.0)
    return np.log(powers.sum(-1)) / (1 - alpha) / np.log(n)


def _jr_max(n: int, a: float) -> float:
    if a == 1:
        return _js_max(n)
    return (np.log(((n + 1.0) ** (1.0 - a) + n - 1.0) / (2.0 ** (1.0 - a) * n))
            + (1.0 - a) * np.log((n + 1.0) / (2.0 * n))) / (2.0 * (a - 1))


def renyi_complexity(p: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(H_alpha, C_alpha): Renyi alpha-entropy and alpha-complexity (Jensen-Renyi divergence)."""
    p = _as_probs(p)
    n = p.shape[-1]
    if alpha == 1:
        return statistical_complexity(p)
    h = renyi_entropy(p, alpha)
    mid = (p + 1.0 / n) / 2
    first = np.log(np.where(p > 0, mid ** (1 - alpha) * np.where(p > 0, p, 1.0) ** alpha, 0.0).sum(-1))
    second = np.log((n ** (-alpha) * mid ** (1 - alpha)).sum(-1))
    return h, h * (first + second) / (2 * (alpha - 1)) / _jr_max(n, alpha)


def complexity_entropy_curve(p: np.ndarray, qs, family: str = "tsallis") -> tuple[np.ndarray, np.ndarray]:
    """(H, C) of each row over a range of q (Tsallis) or alpha (Renyi): arrays of shape (m, len(qs))."""
    fn = {"tsallis": tsallis_complexity, "renyi": renyi_complexity}[family]
    pairs = [fn(p, float(q)) for q in qs]
    return np.stack([h for h, _ in pairs], -1), np.stack([c for _, c in pairs], -1)


def measures(p: np.ndarray, qs=(), alphas=()) -> tuple[np.ndarray, list[str]]:
    """Rows of distributions (m, n) -> (m, k) measures: H, C, then H_q, C_q per q, then H_a, C_a per alpha."""
    cols, names = list(statistical_complexity(p)), ["H", "C"]
    for q in qs:
        cols += list(tsallis_complexity(p, float(q)))
        names += [f"H_q{q:g}", f"C_q{q:g}"]
    for a in alphas:
        cols += list(renyi_complexity(p, float(a)))
        names += [f"H_a{a:g}", f"C_a{a:g}"]
    return np.stack(cols, -1), names


# ---------------------------------------------------------------- series from audio


SOURCES = ("spectrum", "spectrum-ordinal", "waveform")


@dataclass(frozen=True)
class OrdinalConfig(Windowed):
    """Complexity-entropy series of one window: channels = measures x sources, length = STFT frames.

    Sources: `spectrum` (each frame's power spectrum as a distribution over its bins), `spectrum-ordinal`
    (Bandt-Pompe over each frame's spectrum along frequency) and `waveform` (Bandt-Pompe over
    `n_fft`-sample windows of the waveform, one per frame). Measures per source: H, C, Tsallis (H_q,
    C_q) for each `q`, Renyi (H_a, C_a) for each `alpha`.
    """

    kind: ClassVar[str] = "complexity-entropy"

    sr: int = 2000
    n_fft: int = 256
    hop_length: int = 32
    fmin: float = 0.0
    fmax: float = 1000.0
    window_s: float = 2.0
    dx: int = 4
    tau: int = 1
    tie_precision: int | None = None
    q: tuple[float, ...] = (0.5, 2.0)
    alpha: tuple[float, ...] = (0.5, 2.0)
    sources: tuple[str, ...] = SOURCES

    def __post_init__(self) -> None:
        bad = [s for s in self.sources if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown series source(s) {bad}; use {', '.join(SOURCES)}")

    @property
    def channel_names(self) -> list[str]:
        names = ["H", "C"] + [f"{m}_q{q:g}" for q in self.q for m in "HC"] + [f"{m}_a{a:g}" for a in self.alpha for m in "HC"]
        return [f"{s}:{n}" for s in self.sources for n in names]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.channel_names), self.n_frames)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "channels": self.channel_names}

    def compute(self, y: np.ndarray, sr: int) -> np.ndarray:
        if sr != self.sr:
            raise ValueError(f"complexity-entropy series expect audio at {self.sr} Hz, got {sr} Hz; resample first")
        y = np.asarray(y, dtype=np.float32)
        out = []
        if "spectrum" in self.sources or "spectrum-ordinal" in self.sources:
            lo, hi = stft_bins(self.sr, self.n_fft, self.fmin, self.fmax)
            power = _frames_power(y, self.n_fft, self.hop_length, True)[:, lo:hi].astype(np.float64)
            if "spectrum" in self.sources:
                total = power.sum(-1, keepdims=True)
                dist = np.where(total > 0, power / np.where(total > 0, total, 1.0), 1.0 / power.shape[1])
                out.append(measures(dist, self.q, self.alpha)[0])
            if "spectrum-ordinal" in self.sources:
                dist = ordinal_distribution(power, self.dx, self.tau, self.tie_precision)
                out.append(measures(dist, self.q, self.alpha)[0])
        if "waveform" in self.sources:
            padded = np.pad(y, self.n_fft // 2, mode="reflect") if len(y) > self.n_fft // 2 else np.pad(y, self.n_fft // 2)
            if len(padded) < self.n_fft:
                padded = np.pad(padded, (0, self.n_fft - len(padded)))
            n_frames = 1 + (len(padded) - self.n_fft) // self.hop_length
            frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length][:n_frames]
            dist = ordinal_distribution(frames, self.dx, self.tau, self.tie_precision)
            out.append(measures(dist, self.q, self.alpha)[0])
        series = np.concatenate(out, axis=1).T  # (channels, frames)
        return np.ascontiguousarray(series, dtype=np.float32)
