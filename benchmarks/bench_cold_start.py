"""`deepdive classify` cold start: process start to printed ranking for a 5 s file, bundled model.

Reference in the same run: a bare `python -c pass`, so the figure can be read against the interpreter's
own start-up on this machine.

    .venv/bin/python benchmarks/bench_cold_start.py
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def timed(cmd, repeats=7):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main():
    from deepdive import synth

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "five_seconds.wav"
        sf.write(path, synth.recording("moan", 48000, 5.0, np.random.default_rng(0)), 48000)
        exe = str(Path(sys.executable).parent / "deepdive")
        bare, _ = timed([sys.executable, "-c", "pass"])
        med, best = timed([exe, "classify", str(path), "--format", "json"])
        print(f"python -c pass:              median {bare:.3f} s")
        print(f"deepdive classify 5 s file:  median {med:.3f} s (best {best:.3f} s), "
              f"{med / bare:.1f}x the bare interpreter")


if __name__ == "__main__":
    main()
