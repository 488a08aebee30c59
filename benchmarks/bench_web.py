"""Load on the web server: N concurrent classify requests on loopback against `deepdive serve`.

Starts the real server (`deepdive serve`, uvicorn, the bundled models) in a child process on a free
127.0.0.1 port, then for each concurrency N sends rounds of N simultaneous POST /api/classify uploads
of the same recording (a bounded number of requests, each with a time limit) and prints p50 and p99
latency, throughput and the error count, and the server's peak RSS. The reference, in this
process: `deepdive.classify` on the same file without HTTP; the ratio p50 / reference is the cost of
the server (upload, temporary file, queueing behind the other requests) per request.

Client and server share this machine's cores, so the figures are a floor for a dedicated server.

    .venv/bin/python benchmarks/bench_web.py [--seconds 20] [--sr 48000] [--levels 1,8,32,64,128] [--per-level 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def level(url: str, data: bytes, n: int, total: int) -> dict:
    import httpx

    latencies, errors, statuses = [], 0, {}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one():
            t = time.perf_counter()
            try:
                r = await client.post("/api/classify", files={"file": ("bench.wav", data, "audio/wav")})
                ok = r.status_code == 200 and len(r.json()["ranking"]) > 0
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            except Exception as exc:  # a refused or dropped connection counts as an error
                ok = False
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - t)
            return ok

        t0 = time.perf_counter()
        for _ in range(max(1, total // n)):
            results = await asyncio.gather(*(one() for _ in range(n)))
            errors += results.count(False)
        wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"n": n, "requests": len(lat), "p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "rps": len(lat) / wall, "errors": errors, "statuses": statuses}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the recording uploaded")
    ap.add_argument("--sr", type=int, default=48000)
    ap.add_argument("--levels", default="1,8,32,64,128")
    ap.add_argument("--per-level", type=int, default=256, help="requests per concurrency level")
    args = ap.parse_args()

    import deepdive
    from deepdive import synth

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    rng = np.random.default_rng(0)
    path = tmp / "bench.wav"
    y = synth.recording("whistle", args.sr, args.seconds, rng, snr_db=10)
    sf.write(path, y, args.sr, subtype="PCM_16")
    data = path.read_bytes()

    deepdive.classify(path)  # warm the in-process reference
    ref = []
    for _ in range(30):
        t = time.perf_counter()
        deepdive.classify(path)
        ref.append(time.perf_counter() - t)
    reference = statistics.median(ref)

    port = free_port()
    exe = Path(sys.executable).with_name("deepdive")
    server = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                sys.exit("the server did not start: " + (server.stderr.read().decode() if server.poll() is not None else ""))
            time.sleep(0.2)

        print(f"upload: {args.seconds:g} s at {args.sr} Hz, {len(data) / 1e6:.1f} MB WAV; {os.cpu_count()} cores shared "
              f"by client and server")
        print(f"reference, deepdive.classify in this process: {reference * 1000:.0f} ms per recording")
        print(f"{'concurrent':>10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50/ref':>8} {'req/s':>7} {'errors':>6}")
        asyncio.run(level(url, data, 1, 4))  # warm the server
        for n in (int(v) for v in args.levels.split(",")):
            r = asyncio.run(level(url, data, n, max(n, args.per_level)))
            print(f"{r['n']:>10} {r['requests']:>8} {r['p50'] * 1000:>8.0f} {r['p99'] * 1000:>8.0f} "
                  f"{r['p50'] / reference:>8.1f} {r['rps']:>7.1f} {r['errors']:>6}"
                  + ("" if not r["errors"] else f"  {r['statuses']}"))
        print(f"server peak RSS: {peak_rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
