"""Audio input: load any file libsndfile reads, mix to mono, resample with soxr, stream long files.

Every function that returns samples returns float32 mono in [-1, 1] and takes or returns `sr`
explicitly. Files are never trusted: empty, truncated, NaN/inf or unusable sample rates raise
`AudioError` with the file's name and what to do.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, UnreadableAudioError

__all__ = ["AudioError", "AudioInfo", "info", "load", "resample", "stream", "check_samples"]

MIN_SR = 500
MAX_SR = 384_000
MIN_DURATION_S = 0.02  # shorter inputs are refused by every command alike (classify, detect, scan); Watkins cuts start at 0.054 s
# Float files are nominally within [-1, 1]; far beyond that (up to float32's 3.4e38) the power of a
# window overflows. Features are relative to each window's peak, so such audio is scaled down first.
HUGE = 1e6


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


def sf_path(path: str) -> str | bytes:
    """The path as soundfile can open it: a name that is not UTF-8 (surrogate escapes) as its bytes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def info(path: str | Path) -> AudioInfo:
    """Header facts of an audio file, without reading its samples."""
    p = str(path)
    if not Path(p).is_file():
        raise AudioError(f"{p}: no such file")
    if Path(p).stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (0 bytes)")
    try:
        i = sf.info(sf_path(p))
    except Exception as exc:  # libsndfile says why in many ways
        raise UnreadableAudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    _check_sr(int(i.samplerate), p)
    missing = _declared_shortfall(p)
    if missing:
        raise AudioError(f"{p}: truncated ({missing} bytes of samples missing); copy or download the file again")
    if i.format == "OGG" and _ogg_unfinished(p):
        raise AudioError(f"{p}: truncated (the Ogg stream stops before its last page); copy or download the file again")
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


def _ogg_unfinished(path: str) -> bool:
    """Whether an Ogg file (Vorbis, Opus, FLAC in Ogg) was cut short: its last page is incomplete, or
    is not marked as the end of the stream. libsndfile reads such a file as a shorter recording."""
    import struct

    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 70_000))  # an Ogg page is at most 65,307 bytes
        tail = f.read()
    page = tail.rfind(b"OggS")
    while page >= 0:
        head = tail[page : page + 27]
        if len(head) == 27 and head[4] == 0:  # stream structure version 0: a page header
            n_seg = head[26]
            lacing = tail[page + 27 : page + 27 + n_seg]
            end = page + 27 + n_seg + sum(lacing)
            if len(lacing) == n_seg and end == len(tail):
                return not struct.unpack("B", head[5:6])[0] & 0x04  # the end-of-stream flag
            return True  # the last page runs past the end of the file, or stops before it
        page = tail.rfind(b"OggS", 0, page)
    return True


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:160] if text else type(exc).__name__


def check_samples(y: np.ndarray, where: str) -> np.ndarray:
    """Reject NaN/inf samples; return float32 mono (channels averaged in float64, so that samples
    near float32's largest do not overflow), scaled down when its peak is beyond `HUGE`."""
    if y.ndim == 2:
        y = y[:, 0] if y.shape[1] == 1 else y.astype(np.float64).mean(axis=1)
    if y.size and not np.isfinite(y).all():
        raise AudioError(f"{where}: the audio holds NaN or infinite samples; re-export the file")
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > HUGE:
        y = y / peak
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        raise AudioError(f"{where}: no samples (zero length)")
    return y


def as_samples(samples, sr, where: str = "array input") -> tuple[np.ndarray, int]:
    """An array given to the Python API, as mono float32 with an integer rate, or one clear error.

    1-D is mono; 2-D is (channels, n) or (n, channels): the longer axis is time (a 2-D array with
    both axes equal is refused, since nothing tells which is which). Lists and tuples are arrays.
    Channels are averaged."""
    if isinstance(sr, float | np.floating) and float(sr).is_integer():
        sr = int(sr)
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer):
        raise AudioError(f"{where}: sr must be a whole number of Hz (e.g. sr=48000), not {sr!r}")
    sr = int(sr)
    if not (MIN_SR <= sr <= MAX_SR):
        raise AudioError(f"{where}: sample rate {sr} Hz is outside {MIN_SR}-{MAX_SR} Hz")
    try:
        y = np.asarray(samples)
    except (ValueError, TypeError) as exc:
        raise AudioError(f"{where}: not an array of samples ({_short(exc)})") from None
    if y.dtype.kind not in "iuf":
        raise AudioError(f"{where}: samples must be numbers (integers or floats), not {y.dtype}")
    if y.ndim == 2:
        if y.shape[0] == y.shape[1] and y.shape[0] > 1:
            raise AudioError(f"{where}: a {y.shape[0]} x {y.shape[1]} array: pass (n,) mono, or (n, channels) with n "
                             "longer than the channels")
        if y.shape[0] < y.shape[1]:
            y = y.T  # (channels, n) -> (n, channels)
    elif y.ndim != 1:
        raise AudioError(f"{where}: a {y.ndim}-D array; pass (n,) mono or (n, channels) samples")
    if y.dtype.kind in "iu":  # integer PCM: full scale is 1.0, as soundfile reads files
        y = y.astype(np.float64) / float(np.iinfo(y.dtype).max + 1)
    return check_samples(y, where), sr


def check_duration(n: int, sr: int, where: str) -> None:
    """Every command refuses the same too-short input, with the same words."""
    if n < MIN_DURATION_S * sr:
        raise AudioError(f"{where}: {n / sr:.3g} s of audio is too short; give at least {MIN_DURATION_S:g} s")


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
        y = sf.read(sf_path(meta.path), start=start, stop=stop, dtype="float32", always_2d=True)[0]
    except Exception as exc:
        raise AudioError(f"{meta.path}: could not read samples ({_short(exc)}); the file may be truncated") from None
    _check_complete(meta, len(y), stop - start)
    y = check_samples(y, meta.path)
    if sr is not None and sr != meta.sr:
        y = resample(y, meta.sr, sr)
        return y, sr
    return y, meta.sr


def _check_complete(meta: AudioInfo, got: int, expected: int) -> None:
    """A file that decodes to fewer samples than its header declares was cut short (an MP3 whose
    header counts its frames, say): an error, not a shorter recording. One codec frame of slack."""
    if got < expected - 2048:
        raise AudioError(f"{meta.path}: truncated ({expected - got} of {expected} samples missing); copy or "
                         "download the file again")


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
    read = 0
    try:
        with sf.SoundFile(sf_path(meta.path)) as f:
            while True:
                y = f.read(block, dtype="float32", always_2d=True)
                read += len(y)
                last = len(y) < block
                if last:
                    _check_complete(meta, read, meta.frames)
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


class Cancelled(AudioError):
    """The work reading this audio was called off (the client of a web request went away)."""


_cancel = threading.local()


@contextlib.contextmanager
def cancel_when(event: threading.Event):
    """Within this block, reading audio in this thread (`blocks`) stops with `Cancelled` once `event`
    is set: a long analysis stops at its next block instead of running to the end for nobody."""
    before = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = before


def _check_cancelled() -> None:
    event = getattr(_cancel, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("stopped: the work was called off")


def blocks(source, sr_out: int, sr: int | None = None, block_s: float = 60.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sr_out` of a file (streamed) or of an array given with its `sr`; see
    `cancel_when`."""
    _check_cancelled()
    if isinstance(source, np.ndarray | list | tuple):
        if sr is None:
            raise AudioError("array input: give its sample rate, e.g. classify(samples, sr=48000)")
        y, sr = as_samples(source, sr)
        check_duration(len(y), sr, "array input")
        yield resample(y, sr, sr_out)
        return
    meta = info(source)
    check_duration(meta.frames, meta.sr, meta.path)
    for _, block, _ in stream(source, block_s=block_s, sr=sr_out):
        _check_cancelled()
        yield block
