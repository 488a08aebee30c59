"""Peak RSS of `deepdive prepare` on ../shared/data/watkins and on a synthetic corpus ten times its
duration: preparation streams windows into shards, so peak memory should not grow with the corpus.

    .venv/bin/python benchmarks/bench_prepare_memory.py [--scale 10]
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WATKINS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "watkins"


def peak_rss_of(cmd) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a child process (ru_maxrss of the waited-for child)."""
    code = ("import resource,subprocess,sys,time; t=time.time(); subprocess.run(sys.argv[1:],check=True,"
            "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time()-t)")
    out = subprocess.run([sys.executable, "-c", code, *cmd], check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]) / 1024, float(out[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=10.0)
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "deepdive")
    rows = list(csv.DictReader(open(WATKINS / "metadata.csv")))
    watkins_s = sum(float(r["duration_s"]) for r in rows)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        rss, secs = peak_rss_of([exe, "prepare", "watkins", str(WATKINS), "--out", str(d / "w")])
        print(f"watkins: {len(rows)} cuts, {watkins_s / 3600:.2f} h of audio: peak RSS {rss:.0f} MB, {secs:.0f} s")
        from deepdive import synth

        # 5 synthetic labels x 12 encounters x N cuts of 2-60 s: ten times the audio
        t = time.time()
        target = watkins_s * args.scale
        per_cut = 31.0
        cuts = max(1, int(round(target / per_cut / (5 * 12))))
        synth.write_corpus(d / "big", encounters=12, cuts_per_encounter=cuts, sr=16000, duration_s=(2.0, 60.0), seed=1)
        big = list(csv.DictReader(open(d / "big" / "metadata.csv")))
        big_s = sum(float(r["duration_s"]) for r in big)
        print(f"synthetic corpus written in {time.time() - t:.0f} s: {len(big)} cuts, {big_s / 3600:.2f} h "
              f"({big_s / watkins_s:.1f}x the Watkins audio)")
        rss2, secs2 = peak_rss_of([exe, "prepare", "watkins", str(d / "big"), "--out", str(d / "b")])
        print(f"synthetic x{big_s / watkins_s:.0f}: peak RSS {rss2:.0f} MB, {secs2:.0f} s; ratio of peaks {rss2 / rss:.2f}")


if __name__ == "__main__":
    main()
