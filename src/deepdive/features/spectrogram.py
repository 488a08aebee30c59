"""STFT, mel filterbank, decibels and image resizing in numpy, numerically equal to librosa's defaults.

`melspectrogram(y, sr, ...)` matches `librosa.feature.melspectrogram` (centred frames, zero
padding, periodic Hann window, power 2, Slaney mel scale and area normalisation) and
`power_to_db` matches `librosa.power_to_db`. Tests check both against librosa.

Two feature configurations live here, each a frozen dataclass saved in a bundle's card and able to
rebuild a model's input from audio (`compute(y, sr)`):
- `MelConfig` (kind `log-mel`): the species models' log-mel windows;
- `StftImageConfig` (kind `stft-image`): the right-whale detectors' spectrogram images, as in the
  Kaggle challenge's winning recipes: 256-sample segments with 87.5% overlap at 2 kHz, log power,
  optionally resized to a network's input size.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import ClassVar

import numpy as np

# scipy's FFT is about 8x numpy's on these frames (both pocketfft, float32), but importing scipy.fft
# costs about half a second (it pulls in scipy.special): more than numpy's FFT takes for a few minutes
# of audio, and more than a one-off `classify` of a short file takes in all. So numpy's is used until
# the process has transformed SCIPY_FFT_FROM_FRAMES frames (about 2 minutes of audio at the species
# model's settings) or has imported scipy.fft anyway; the long-running paths (scanning, preparing a
# store) import it up front, so what they compute never depends on what came before. The two differ
# by float rounding (about 1e-7 of the peak).
SCIPY_FFT_FROM_FRAMES = 8192
_frames_seen = 0


def _rfft_for(n_frames: int):
    """The rfft to use next, for `n_frames` more frames (see SCIPY_FFT_FROM_FRAMES)."""
    global _frames_seen
    _frames_seen += n_frames
    if "scipy.fft" in sys.modules or _frames_seen >= SCIPY_FFT_FROM_FRAMES:
        import scipy.fft

        return scipy.fft.rfft
    return np.fft.rfft


def _field_names(cls) -> list[str]:
    """A config's own fields (not its ClassVar `kind`)."""
    return [f.name for f in fields(cls)]


class Windowed:
    """What every feature configuration derives from `sr`, `window_s` and `hop_length`, and its card
    round trip (`to_dict` adds `kind`; `from_dict` ignores keys it does not know; tuples come back
    from JSON lists)."""

    sr: int
    window_s: float
    hop_length: int
    kind: ClassVar[str]

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sr))

    @property
    def n_frames(self) -> int:
        """Centred STFT frames in one window."""
        return 1 + self.window_samples // self.hop_length

    def columns(self, seconds: float) -> float:
        """How many of the model's input columns span `seconds` (frames, or an image's resized columns):
        a time constant given in seconds, as the network sees it."""
        return float(seconds) * self.sr / self.hop_length * self.shape[-1] / self.n_frames

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {"kind": self.kind, **d}

    @classmethod
    def from_dict(cls, d: dict):
        kw = {k: d[k] for k in _field_names(cls) if k in d}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()})


@dataclass(frozen=True)
class MelConfig(Windowed):
    """Everything needed to rebuild a model's input from audio; saved in each bundle's card."""

    kind: ClassVar[str] = "log-mel"

    sr: int = 32_000
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 96
    fmin: float = 20.0
    fmax: float = 16_000.0
    top_db: float = 80.0
    window_s: float = 5.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_mels, self.n_frames)

    def compute(self, y: np.ndarray, sr: int) -> np.ndarray:
        return log_mel(y, sr, self)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular Slaney-normalised mel filters, shape (n_mels, 1 + n_fft // 2), float32."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic
    w.setflags(write=False)
    return w


def _frames_power(y: np.ndarray, n_fft: int, hop_length: int, center: bool, reduce=None) -> np.ndarray:
    """|STFT|^2 frame-major, shape (n_frames, 1 + n_fft // 2), float32. With `reduce` (a function of
    a block of frames' power, e.g. the mel projection), its results for successive blocks of frames,
    stacked: the power of the whole signal never exists at once, and each block is reduced while it
    is still in cache."""
    y = np.asarray(y, dtype=np.float32)
    if center:
        y = np.pad(y, n_fft // 2, mode="constant")
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    n_frames = 1 + (len(y) - n_fft) // hop_length
    n_bins = 1 + n_fft // 2
    frames = np.lib.stride_tricks.as_strided(
        y, shape=(n_frames, n_fft), strides=(y.strides[0] * hop_length, y.strides[0]), writeable=False
    )
    window = _hann(n_fft)
    rfft = _rfft_for(n_frames)
    step = min(n_frames, max(1, (1 << 18) // n_fft))  # blocks of about 1 MB: they stay in cache
    windowed = np.empty((step, n_fft), dtype=np.float32)
    power = np.empty((n_frames if reduce is None else step, n_bins), dtype=np.float32)
    out = []
    for i in range(0, n_frames, step):
        m = min(step, n_frames - i)
        np.multiply(frames[i : i + m], window, out=windowed[:m])
        spec = rfft(windowed[:m], axis=1)  # single precision (numpy >= 2 keeps float32 too)
        if spec.dtype != np.complex64:  # numpy 1.x computes in float64
            spec = spec.astype(np.complex64)
        parts = spec.view(np.float32).reshape(m, n_bins, 2)
        np.square(parts, out=parts)
        block = power[i : i + m] if reduce is None else power[:m]
        np.add(parts[..., 0], parts[..., 1], out=block)
        if reduce is not None:
            out.append(reduce(block))
    if reduce is None:
        return power
    return np.concatenate(out) if len(out) > 1 else out[0].copy()


def stft_power(y: np.ndarray, n_fft: int = 2048, hop_length: int = 512, center: bool = True) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window, shape (1 + n_fft // 2, n_frames), float32."""
    return _frames_power(y, n_fft, hop_length, center).T


def melspectrogram(
    y: np.ndarray,
    sr: int,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Mel power spectrogram, shape (n_mels, n_frames); librosa.feature.melspectrogram's defaults."""
    fb = mel_filterbank(sr, n_fft, n_mels, float(fmin), None if fmax is None else float(fmax))
    return (_frames_power(y, n_fft, hop_length, True) @ fb.T).T


def power_to_db(
    S: np.ndarray, ref: float | str = 1.0, amin: float = 1e-10, top_db: float | None = 80.0
) -> np.ndarray:
    """10 log10(S / ref), floored at amin and clipped to top_db below the peak (librosa's rule).

    `ref="max"` uses the array's maximum (librosa's `ref=np.max`).
    """
    S = np.asarray(S)
    ref_value = float(np.max(S)) if ref == "max" else float(ref)
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(max(amin, abs(ref_value)))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec.astype(np.float32, copy=False)


def log_mel(y: np.ndarray, sr: int, cfg: MelConfig) -> np.ndarray:
    """A model's input for one window: dB mel spectrogram relative to the window's peak."""
    if sr != cfg.sr:
        raise ValueError(f"log_mel expects audio at {cfg.sr} Hz, got {sr} Hz; resample first")
    S = melspectrogram(y, sr, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax)
    return power_to_db(S, ref="max", top_db=cfg.top_db)


@lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Linear interpolation (n_out, n_in) with half-pixel centres; a triangle as wide as the scale
    when shrinking, so that every input sample counts (antialiased, like PIL's bilinear)."""
    scale = n_in / n_out
    support = max(1.0, scale)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support)
    w /= w.sum(axis=1, keepdims=True)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D array to `size` (rows, columns) by separable linear interpolation."""
    h, w = int(size[0]), int(size[1])
    out = np.asarray(img, dtype=np.float32)
    if out.shape[0] != h:
        out = _resize_matrix(out.shape[0], h) @ out
    if out.shape[1] != w:
        out = out @ _resize_matrix(out.shape[1], w).T
    return np.ascontiguousarray(out, dtype=np.float32)


def stft_bins(sr: int, n_fft: int, fmin: float, fmax: float) -> tuple[int, int]:
    """First and one-past-last STFT bin between fmin and fmax (inclusive)."""
    lo = int(np.ceil(fmin * n_fft / sr))
    hi = int(np.floor(min(fmax, sr / 2) * n_fft / sr)) + 1
    return lo, hi


@dataclass(frozen=True)
class StftImageConfig(Windowed):
    """A detector's input: log-power STFT of one window as an image (rows: frequency, low to high).

    Defaults follow the right-whale challenge: 2 kHz audio, 256-sample Hann segments, 87.5% overlap
    (hop 32), the bins from `fmin` to `fmax`, dB relative to the window's peak with a `top_db` floor,
    then resized to `image` (rows, columns) when set; None keeps the STFT grid (129 x 126 for 2 s).
    """

    kind: ClassVar[str] = "stft-image"

    sr: int = 2000
    n_fft: int = 256
    hop_length: int = 32
    fmin: float = 0.0
    fmax: float = 1000.0
    top_db: float = 80.0
    window_s: float = 2.0
    image: tuple[int, int] | None = None

    @property
    def bins(self) -> tuple[int, int]:
        return stft_bins(self.sr, self.n_fft, self.fmin, self.fmax)

    @property
    def shape(self) -> tuple[int, int]:
        if self.image is not None:
            return (int(self.image[0]), int(self.image[1]))
        lo, hi = self.bins
        return (hi - lo, self.n_frames)

    def compute(self, y: np.ndarray, sr: int) -> np.ndarray:
        if sr != self.sr:
            raise ValueError(f"stft image expects audio at {self.sr} Hz, got {sr} Hz; resample first")
        lo, hi = self.bins
        power = _frames_power(y, self.n_fft, self.hop_length, True)[:, lo:hi].T
        img = power_to_db(power, ref="max", top_db=self.top_db)
        return resize_image(img, self.image) if self.image is not None else np.ascontiguousarray(img)


# ---------------------------------------------------------------- overview of a whole recording


def overview_n_fft(sr: int) -> int:
    """A display STFT length: about 8 Hz bins at low rates (256 at 2 kHz), capped at 2048 (23 Hz at 48 kHz)."""
    return int(min(2048, max(256, 2 ** round(np.log2(sr / 8)))))


def overview_power(blocks, total_samples: int, sr: int, columns: int = 1200, n_fft: int | None = None
                   ) -> np.ndarray:
    """Power spectrogram of a whole recording at most `columns` wide, from its blocks of samples.

    Frames of `n_fft` samples (Hann window) are taken every `hop` samples, hop between n_fft/4 and
    n_fft as the length needs; when a file has more frames than columns, each column is the mean
    power of the frames starting in its stretch of time. Only one block is held at a time, so a
    10-hour file costs the memory of its blocks and of the image. Returns (1 + n_fft // 2, n_columns)
    float32; column c covers [c, c + 1) * total_samples / n_columns samples.
    """
    n_fft = n_fft or overview_n_fft(sr)
    total = max(int(total_samples), 1)
    n_cols = int(max(1, min(columns, -(-total // (n_fft // 4)))))
    hop = int(min(n_fft, max(n_fft // 4, total // n_cols)))
    sums = np.zeros((n_cols, 1 + n_fft // 2), dtype=np.float64)
    counts = np.zeros(n_cols, dtype=np.int64)
    carry = np.zeros(0, dtype=np.float32)
    consumed = 0  # file position of carry[0]
    next_start = 0  # file position of the next frame
    for block in blocks:
        buf = np.concatenate([carry, np.asarray(block, dtype=np.float32)])
        offset = next_start - consumed
        if len(buf) - offset >= n_fft:
            n = 1 + (len(buf) - offset - n_fft) // hop
            power = _frames_power(buf[offset : offset + (n - 1) * hop + n_fft], n_fft, hop, center=False)
            starts = next_start + hop * np.arange(n)
            cols = np.minimum(starts * n_cols // total, n_cols - 1)
            np.add.at(sums, cols, power)
            np.add.at(counts, cols, 1)
            next_start += n * hop
        keep = next_start - consumed
        consumed += min(keep, len(buf))
        carry = buf[keep:] if keep < len(buf) else np.zeros(0, dtype=np.float32)
    if counts.sum() == 0 or (next_start < total and len(carry)):  # a file shorter than one frame, or its tail
        tail = np.pad(carry, (0, max(0, n_fft - len(carry))))[:n_fft]
        col = min(next_start * n_cols // total, n_cols - 1)
        sums[col] += _frames_power(tail, n_fft, n_fft, center=False)[0]
        counts[col] += 1
    filled = counts > 0
    out = np.zeros_like(sums)
    out[filled] = sums[filled] / counts[filled, None]
    idx = np.maximum.accumulate(np.where(filled, np.arange(n_cols), 0))  # empty columns repeat the last filled
    return out[idx].T.astype(np.float32)
