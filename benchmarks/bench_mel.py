"""Our numpy mel spectrogram vs librosa's, same process, same input: speed ratio and largest difference.

    .venv/bin/python benchmarks/bench_mel.py
"""

import time

import librosa
import numpy as np

from deepdive.features.spectrogram import MelConfig, melspectrogram, power_to_db


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    for seconds in (5, 60):
        y = (rng.standard_normal(cfg.sr * seconds) * 0.1).astype(np.float32)
        args = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
        melspectrogram(y, cfg.sr, **args)
        librosa.feature.melspectrogram(y=y, sr=cfg.sr, **args)  # warm caches of both
        t_ours, ours = best_of(lambda y=y, args=args: power_to_db(melspectrogram(y, cfg.sr, **args), ref="max"))
        t_ref, ref = best_of(lambda y=y, args=args: librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=cfg.sr, **args), ref=np.max))
        print(f"{seconds:3d} s of audio at {cfg.sr} Hz: deepdive {t_ours * 1e3:7.2f} ms, librosa {t_ref * 1e3:7.2f} ms, "
              f"ratio librosa/deepdive {t_ref / t_ours:5.2f}x, max |dB diff| {np.max(np.abs(ours - ref)):.2e}")


if __name__ == "__main__":
    main()
