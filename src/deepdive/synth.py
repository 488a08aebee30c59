"""Synthetic marine sounds in ocean-like noise, for tests and the demo. Nothing here is a real animal.

Kinds: `upcall` (right-whale-like 50-250 Hz upsweep, ~1 s), `whistle` (dolphin-like frequency-modulated
tonal, 5-15 kHz), `clicks` (sperm-whale-like broadband click trains), `moan` (humpback-like
harmonic moan, 150-600 Hz) and `pulse` (fin-whale-like 20 Hz downsweep pulses). Background noise is
brown-ish (1/f^2 below a knee) plus a little white noise, like a shallow-water recording.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

KINDS = ("upcall", "whistle", "clicks", "moan", "pulse")
SYNTH_SCIENTIFIC = {
    "upcall": "Synthetic upcall",
    "whistle": "Synthetic whistle",
    "clicks": "Synthetic clicks",
    "moan": "Synthetic moan",
    "pulse": "Synthetic pulse",
}


def ocean_noise(n: int, sr: int, rng: np.random.Generator, level: float = 0.02) -> np.ndarray:
    """Coloured noise: energy falling with frequency above ~50 Hz, plus a white floor."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / sr)
    shape = 1.0 / np.maximum(f, 50.0)
    y = np.fft.irfft(spec * shape, n)
    y = y / (np.std(y) + 1e-12) * level
    return (y + rng.standard_normal(n) * level * 0.1).astype(np.float32)


def coloured_noise(n: int, sr: int, rng: np.random.Generator, slope_db_per_octave: float, level: float = 0.1) -> np.ndarray:
    """Gaussian noise whose power spectrum falls (or rises) by `slope_db_per_octave` from 20 Hz up:
    0 is white, -3 pink, -6 brown; scaled to `level` RMS."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    y = np.fft.irfft(spec * (f / 20.0) ** (slope_db_per_octave / 6.0206), n)
    return (y / (np.std(y) + 1e-12) * level).astype(np.float32)


def _sweep(t: np.ndarray, f0: float, f1: float, dur: float) -> np.ndarray:
    return 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur))


def _envelope(n: int) -> np.ndarray:
    return np.hanning(n).astype(np.float32) if n > 2 else np.ones(n, np.float32)


def call(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One call of the given kind (no noise), amplitude about 0.5."""
    if kind == "upcall":
        dur = rng.uniform(0.6, 1.2)
        t = np.arange(int(dur * sr)) / sr
        f0, f1 = rng.uniform(50, 90), rng.uniform(160, 240)
        y = np.sin(_sweep(t, f0, f1, dur)) + 0.3 * np.sin(2 * _sweep(t, f0, f1, dur))
    elif kind == "whistle":
        dur = rng.uniform(0.4, 1.0)
        t = np.arange(int(dur * sr)) / sr
        fc = rng.uniform(6000, 10000) if sr >= 24000 else rng.uniform(0.2, 0.35) * sr
        depth = rng.uniform(0.1, 0.3) * fc
        y = np.sin(2 * np.pi * fc * t + depth / rng.uniform(2, 5) * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    elif kind == "clicks":
        dur = rng.uniform(1.0, 2.0)
        y = np.zeros(int(dur * sr))
        ici = rng.uniform(0.3, 0.8)
        click = rng.standard_normal(max(4, int(0.002 * sr))) * _envelope(max(4, int(0.002 * sr)))
        for s in np.arange(0, dur - 0.01, ici):
            i = int(s * sr)
            y[i : i + len(click)] += click[: len(y) - i]
        return (y / (np.abs(y).max() + 1e-9) * 0.6).astype(np.float32)
    elif kind == "moan":
        dur = rng.uniform(1.0, 2.5)
        t = np.arange(int(dur * sr)) / sr
        f0 = rng.uniform(150, 300)
        y = sum(np.sin(2 * np.pi * k * f0 * t * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))) / k for k in (1, 2, 3))
    elif kind == "pulse":
        dur = 1.0
        t = np.arange(int(dur * sr)) / sr
        y = np.sin(_sweep(t, 28, 17, dur)) + 0.4 * np.sin(2 * _sweep(t, 28, 17, dur))
    else:
        raise ValueError(f"unknown synthetic call kind '{kind}'; use one of {', '.join(KINDS)}")
    y = np.asarray(y, dtype=np.float64) * _envelope(len(y))
    return (y / (np.abs(y).max() + 1e-9) * 0.5).astype(np.float32)


def recording(
    kind: str, sr: int = 16000, duration_s: float = 6.0, rng: np.random.Generator | None = None,
    snr_db: float = 15.0, n_calls: int | None = None, noise_level: float = 0.02,
) -> np.ndarray:
    """Ocean noise with `n_calls` calls of one kind at random times, at about `snr_db`."""
    rng = rng or np.random.default_rng()
    n = int(duration_s * sr)
    y = ocean_noise(n, sr, rng, noise_level)
    n_calls = n_calls if n_calls is not None else max(1, int(duration_s // 3))
    noise_rms = float(np.sqrt(np.mean(y**2)))
    for _ in range(n_calls):
        c = call(kind, sr, rng)[:n]
        c *= noise_rms * 10 ** (snr_db / 20) / (np.sqrt(np.mean(c**2)) + 1e-12)
        start = int(rng.integers(0, n - len(c) + 1))
        y[start : start + len(c)] += c
    peak = np.abs(y).max()
    return (y / peak * 0.8 if peak > 0.99 else y).astype(np.float32)


def write_corpus(
    out: str | Path,
    kinds: tuple[str, ...] = KINDS,
    encounters: int = 3,
    cuts_per_encounter: int = 4,
    sr: int = 16000,
    duration_s: tuple[float, float] = (2.0, 9.0),
    seed: int = 0,
) -> Path:
    """A Watkins-layout corpus (`<Kind>/<cut>.wav` + metadata.csv) of synthetic recordings.

    Each encounter has its own noise level and SNR, so a split by encounter is meaningful.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    rows = []
    for k_i, kind in enumerate(kinds):
        folder = out / f"Synthetic_{kind}"
        folder.mkdir(parents=True, exist_ok=True)
        for e in range(encounters):
            tape = f"9{k_i:02d}{e:02d}"
            noise = float(rng.uniform(0.005, 0.05))
            snr = float(rng.uniform(8, 20))
            for c in range(cuts_per_encounter):
                cut = f"{tape}{c:03d}"
                dur = float(rng.uniform(*duration_s))
                y = recording(kind, sr, dur, rng, snr_db=snr, noise_level=noise)
                path = folder / f"{cut}.wav"
                sf.write(path, y, sr, subtype="PCM_16")
                rows.append({
                    "path": f"{folder.name}/{cut}.wav", "cut_id": cut, "species": f"Synthetic {kind}",
                    "scientific_name": SYNTH_SCIENTIFIC[kind], "watkins_code": "", "sample_rate": sr,
                    "duration_s": round(len(y) / sr, 4), "tape": tape, "date": f"{e + 1}-Jan-20{k_i:02d}",
                    "location": "", "also_present": "",
                })
    with open(out / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def write_kaggle(
    out: str | Path, tapes: int = 6, clips_per_tape: int = 8, positive_share: float = 0.4, test_clips: int = 6,
    seed: int = 0, snr_db: tuple[float, float] = (3.0, 12.0),
) -> Path:
    """A challenge-layout folder (train.csv, train/*.aiff, test/*.aiff, sources.csv) of synthetic 2 s
    clips at 2 kHz: positives hold one up-call in ocean noise, negatives noise alone or a moan or pulse.
    Each tape has its own noise level; clips of one tape share it, so splits must be by tape."""
    out = Path(out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sr, n = 2000, 4000

    def clip(positive: bool, noise: float) -> np.ndarray:
        y = ocean_noise(n, sr, rng, noise)
        rms = float(np.sqrt(np.mean(y**2)))
        kind = "upcall" if positive else rng.choice(["none", "moan", "pulse"])
        if kind != "none":
            c = call(str(kind), sr, rng)[: n - 200]
            c *= rms * 10 ** (rng.uniform(*snr_db) / 20) / (np.sqrt(np.mean(c**2)) + 1e-12)
            start = int(rng.integers(0, n - len(c) + 1))
            y[start : start + len(c)] += c
        return (y / max(1.0, float(np.abs(y).max()) / 0.9)).astype(np.float32)

    rows, sources, k = [], [], 0
    for t in range(tapes):
        tape = f"9{t:04d}"
        noise = float(rng.uniform(0.005, 0.05))
        for _ in range(clips_per_tape):
            k += 1
            positive = bool(rng.random() < positive_share)
            name = f"train{k}.aiff"
            sf.write(out / "train" / name, clip(positive, noise), sr, format="AIFF", subtype="PCM_16")
            rows.append((name, int(positive)))
            sources.append((name, f"{tape}{k:03d}", tape, 0.0))
    for i in range(1, test_clips + 1):
        sf.write(out / "test" / f"test{i}.aiff", clip(i % 2 == 1, float(rng.uniform(0.005, 0.05))), sr,
                 format="AIFF", subtype="PCM_16")
    with open(out / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip_name", "label"])
        w.writerows(rows)
    with open(out / "sources.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip_name", "source_cut", "tape", "offset_s"])
        w.writerows(sources)
    return out
