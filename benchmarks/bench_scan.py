"""Scan speed (times real time) and peak memory on long files, each scan in a fresh process.

Writes synthetic recordings (ocean noise with calls, 16-bit WAV) of 1 h and 10 h at 2 kHz and at
32 kHz, then scans them with the bundled detector and the bundled species model (default hop: half a
window; the species model in fp32 and in int8, its default) and prints times real time and the child
process's peak RSS (and, where BirdNET is installed, 10 minutes with `species-birdnet`). The 10 h
files against the 1 h files show whether memory grows with length. Then a folder of 8 half-hour
files, scanned with one process and with --workers 2 (process start and model loading included), and
a folder of short cuts (the Watkins cuts) scanned side by side against one at a time.

    .venv/bin/python benchmarks/bench_scan.py [--tmp DIR]

`--compare DIR ...`: only the species scan of the 1 h file at 32 kHz (int8), the bundled species model
against each of these model folders, alternating, two rounds (each scan in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

CHILD = """
import json, resource, sys, time
from deepdive.scanning import window_scores, events_from_scores
path, model = sys.argv[1], sys.argv[2]
t = time.perf_counter()
starts, scores, bundle = window_scores(path, model)
events = events_from_scores(starts, scores, bundle)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "windows": len(starts), "events": len(events),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_long(path: Path, sr: int, hours: float, seed: int = 0) -> None:
    from deepdive import synth

    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(int(hours * 60)):  # a minute at a time
            f.write(synth.recording("upcall", sr, 60.0, rng, snr_db=10, n_calls=3))


def run(path: Path, model: str, precision: str = "int8") -> dict:
    env = {**os.environ, "DEEPDIVE_PRECISION": precision}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), model], capture_output=True, text=True, check=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _birdnet_here() -> bool:
    """Whether BirdNET can run here (TFLite runtime and model file), for the species-birdnet row."""
    from deepdive.errors import ModelError
    from deepdive.features.birdnet import model_path

    try:
        import ai_edge_litert  # noqa: F401

        model_path()
        return True
    except (ImportError, ModelError):
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--cuts", default=None, help="a folder of short cuts (default: ../shared/data/watkins)")
    ap.add_argument("--compare", nargs="+", default=None, metavar="DIR",
                    help="only the 1 h species scan, the bundle against these model folders, alternating")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare, args.tmp)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        cases = [("detector", "rightwhale", 2000, 1.0, "fp32"), ("detector", "rightwhale", 2000, 10.0, "fp32"),
                 ("species, fp32", "species", 32000, 1.0, "fp32"), ("species, int8", "species", 32000, 1.0, "int8"),
                 ("species, int8", "species", 32000, 10.0, "int8")]
        if _birdnet_here():
            cases.append(("species-birdnet (BirdNET features)", "species-birdnet", 32000, 1 / 6, "fp32"))
        print("| model | file | windows | seconds | times real time | peak RSS |")
        print("|---|---|---:|---:|---:|---:|")
        for label, model, sr, hours, precision in cases:
            path = Path(tmp) / f"{hours:g}h_{sr}.wav"
            if not path.exists():
                write_long(path, sr, hours)
            r = run(path, model, precision)
            length = f"{hours:g} h" if hours >= 1 else f"{hours * 60:g} min"
            print(f"| {label} | {length} at {sr} Hz | {r['windows']:,} | {r['seconds']:.1f} | "
                  f"{hours * 3600 / r['seconds']:,.0f}x | {r['peak_rss_mb']:.0f} MB |", flush=True)
        # a folder of 8 half-hour files with the detector: one process against --workers 2
        from deepdive.scanning import scan_files

        folder = Path(tmp) / "folder"
        folder.mkdir()
        for i in range(8):
            write_long(folder / f"f{i}.wav", 2000, 0.5, seed=i)
        print("\n| folder of 8 x 30 min at 2 kHz | seconds | times real time |\n|---|---:|---:|")
        for workers in (1, 2):
            s = scan_files([folder], Path(tmp) / f"out{workers}", workers=workers)
            print(f"| --workers {workers} | {s['seconds']:.1f} | {s['times_real_time']:,.0f}x |", flush=True)
        short_cuts(Path(tmp), args.cuts)
    return 0


def compare(models: list[str], tmp_dir: str | None) -> int:
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        path = Path(tmp) / "1h_32000.wav"
        write_long(path, 32000, 1.0)
        print("| round | model | seconds | times real time | peak RSS |\n|---:|---|---:|---:|---:|")
        for round_no in range(2):
            for model in ["species", *models]:
                r = run(path, model, "int8")
                print(f"| {round_no} | {model} | {r['seconds']:.1f} | {3600 / r['seconds']:,.0f}x | {r['peak_rss_mb']:.0f} MB |",
                      flush=True)
    return 0


def short_cuts(tmp: Path, folder: str | None) -> None:
    """A folder of short cuts (the Watkins cuts where ../shared/data is beside the project: seconds
    long, 600 Hz to 166 kHz) scanned with the species model: files side by side, one lane each (what
    scan does with short files) against one at a time with every lane on each (what it did before),
    alternating, in this process."""
    from deepdive import scanning

    root = Path(folder) if folder else Path(__file__).resolve().parents[2] / "shared" / "data" / "watkins"
    files = sorted(root.rglob("*.wav")) if root.is_dir() else []
    if not files:
        print(f"\n(no folder of cuts at {root}: pass --cuts DIR)")
        return
    audio_s = sum(sf.info(f).duration for f in files)
    scanning.scan_files(files[:4], tmp / "warm", model="species")
    print(f"\n| {len(files)} cuts of {root.name} ({audio_s / 3600:.2f} h), species model | seconds | times real time |")
    print("|---|---:|---:|")
    default = scanning.SHORT_FILE_S
    for run_no in range(2):
        for name, short_s in (("side by side (today)", default), ("one at a time, every lane on each", 0.0)):
            scanning.SHORT_FILE_S = short_s
            s = scanning.scan_files(files, tmp / f"cuts-{run_no}-{short_s}", model="species")
            print(f"| {name} | {s['seconds']:.1f} | {s['times_real_time']:,.0f}x |", flush=True)
    scanning.SHORT_FILE_S = default


if __name__ == "__main__":
    sys.exit(main())
