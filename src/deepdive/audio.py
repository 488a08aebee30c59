"""Audio input: load any file libsndfile reads, mix to mono, resample with soxr, stream long files.

Every function that returns samples returns float32 mono in [-1, 1] and takes or returns `sr`
explicitly. Files are never trusted: empty, truncated, NaN/inf or unusable sample rates raise
`AudioError` with the file's name and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, UnreadableAudioError

__all__ = ["AudioError", "AudioInfo", "info", "load", "resample", "stream", "check_samples"]

MIN_SR = 500
MAX_SR = 384_000


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sr: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sr


def _check_sr(sr: int, where: str) -> None:
    if not (MIN_SR <= sr <= MAX_SR):
        raise AudioError(
            f"{where}: sample rate {sr} Hz is outside {MIN_SR}-{MAX_SR} Hz; resample the file first"
        )


def info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file, without reading its samples."""
    p = str(path)
    if not Path(p).is_file():
        raise AudioError(f"{p}: no such file")
    if Path(p).stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    try:
        i = sf.info(p)
    except Exception as exc:  # libsndfile says why in many ways
        raise UnreadableAudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    _check_sr(int(i.samplerate), p)
    missing = _declared_shortfall(p)
    if missing:
        raise AudioError(f"{p}: truncated ({missing} bytes of samples missing); copy or download the file again")
    if i.frames <= 0:
        raise AudioError(f"{p}: no samples in the file (zero length)")
    return AudioInfo(p, int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def _declared_shortfall(path: str) -> int:
    """Bytes the header's data chunk declares beyond the end of the file (RIFF/WAV and AIFF).

    libsndfile quietly reads what is there, so a copy cut off mid-transfer would pass as a shorter
    recording; this compares the declared size of the sample chunk with the bytes present.
    """
    import struct

    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return 0
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            endian, data_id = "<", b"data"
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            endian, data_id = ">", b"SSND"
        else:
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, clen = chunk[:4], struct.unpack(endian + "I", chunk[4:8])[0]
            if cid == data_id:
                if clen in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                    return 0
                return max(0, pos + 8 + clen - size)
            pos += 8 + clen + (clen & 1)
    return 0


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__


def check_samples(y: np.ndarray, where: str) -> np.ndarray:
    """Reject NaN/inf samples; return float32 mono."""
    if y.ndim == 2:
        y = y[:, 0] if y.shape[1] == 1 else y.mean(axis=1)
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        raise AudioError(f"{where}: no samples (zero length)")
    if not np.isfinite(y).all():
        raise AudioError(f"{where}: the audio holds NaN or infinite samples; re-export the file")
    return y


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float32 audio with soxr (high quality)."""
    if sr_in == sr_out:
        return y.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(y, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load(
    path: str | Path,
    sr: int | None = None,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read (part of) a file as mono float32, resampled to `sr` when given.

    Returns (samples, sample_rate). For long recordings prefer `stream`.
    """
    meta = info(path)
    start = int(round(offset_s * meta.sr))
    stop = meta.frames if duration_s is None else min(meta.frames, start + int(round(duration_s * meta.sr)))
    try:
        y = sf.read(meta.path, start=start, stop=stop, dtype="float32", always_2d=True)[0]
    except Exception as exc:
        raise AudioError(f"{meta.path}: could not read samples ({_short(exc)}); the file may be truncated") from None
    y = check_samples(y, meta.path)
    if sr is not None and sr != meta.sr:
        y = resample(y, meta.sr, sr)
        return y, sr
    return y, meta.sr


def stream(
    path: str | Path, block_s: float = 60.0, sr: int | None = None
) -> Iterator[tuple[float, np.ndarray, int]]:
    """Yield (start_time_s, samples, sr) blocks of a long file without loading it whole.

    Resampling is streamed with soxr's stateful resampler, so block edges are seamless.
    """
    meta = info(path)
    out_sr = sr or meta.sr
    block = max(1, int(round(block_s * meta.sr)))
    resampler = None
    if out_sr != meta.sr:
        import soxr

        resampler = soxr.ResampleStream(meta.sr, out_sr, 1, dtype="float32", quality="HQ")
    t_out = 0
    try:
        with sf.SoundFile(meta.path) as f:
            while True:
                y = f.read(block, dtype="float32", always_2d=True)
                last = len(y) < block
                if len(y) == 0 and not last:
                    break
                y = check_samples(y, meta.path) if len(y) else np.zeros(0, np.float32)
                if resampler is not None:
                    y = resampler.resample_chunk(y, last=last).astype(np.float32, copy=False)
                if len(y):
                    yield t_out / out_sr, y, out_sr
                    t_out += len(y)
                if last:
                    break
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{meta.path}: could not read samples ({_short(exc)}); the file may be truncated") from None


def blocks(source, sr_out: int, sr: int | None = None, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sr_out` of a file (streamed) or of an array given with its `sr`."""
    if isinstance(source, np.ndarray):
        if sr is None:
            raise AudioError("array input: give its sample rate, e.g. classify(samples, sr=48000)")
        if not (MIN_SR <= sr <= MAX_SR):
            raise AudioError(f"array input: sample rate {sr} Hz is outside {MIN_SR}-{MAX_SR} Hz")
        yield resample(check_samples(np.asarray(source, dtype=np.float32), "array input"), sr, sr_out)
        return
    for _, block, _ in stream(source, block_s=block_s, sr=sr_out):
        yield block
