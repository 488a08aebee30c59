"""`demo` and the web page (`serve`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DeepdiveError
from .common import app, check, fail, finite, rich_console

PANEL = "Demo and web page"


@app.command(rich_help_panel=PANEL)
def demo(
    out: Annotated[Path, typer.Option(help="Where to write the synthetic examples")] = Path("demo_out"),
) -> None:
    """Write a few synthetic example recordings, rank them with the bundled species model and score two
    2 s clips with the bundled right-whale detector."""
    import numpy as np
    import soundfile as sf

    from .. import synth
    from ..outputs import rankings_table
    from ..predict import classify as rank

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    console = rich_console()
    console.print("[bold]deepdive demo[/bold]: synthetic recordings (not real animals), ranked by the bundled "
                  "species model trained on Watkins cuts.\n")
    results = []
    for kind in ("upcall", "whistle", "clicks", "moan", "pulse"):
        path = out / f"synthetic_{kind}.wav"
        sf.write(path, synth.recording(kind, 32000, 8.0, rng, snr_db=18), 32000, subtype="PCM_16")
        try:
            results.append({"file": str(path), **rank(path, top=3).as_dict()})
        except DeepdiveError as exc:
            fail(str(exc))
            raise typer.Exit(1) from None
    rankings_table(results, console)
    console.print("\nThese are synthetic sounds, so the ranking shows what the model associates with each shape of "
                  "call; run [bold]deepdive classify YOUR.wav[/bold] on a real recording.\n")
    from ..bundle import resolve
    from ..outputs import detections_table
    from ..predict import detect as detect_one

    detections = []
    for name, y in (("synthetic_upcall_2s.wav", synth.recording("upcall", 2000, 2.0, rng, snr_db=10, n_calls=1)),
                    ("synthetic_noise_2s.wav", synth.ocean_noise(4000, 2000, rng, 0.02))):
        path = out / name
        sf.write(path, y, 2000, subtype="PCM_16")
        try:
            p = detect_one(path)
        except DeepdiveError as exc:
            fail(str(exc))
            raise typer.Exit(1) from None
        detections.append({"file": str(path), "probability": p, "detected": p >= resolve(None, "detection").threshold})
    detections_table(detections, console, resolve(None, "detection").threshold)
    console.print("Right-whale detector on 2 s clips; run [bold]deepdive detect CLIP.aiff[/bold] on your own.")


@app.command(rich_help_panel=PANEL)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted (MB); larger ones get 413")] = 200.0,
    species_model: Annotated[Path | None, typer.Option(help="Species bundle folder; default: the bundled one")] = None,
    detector_model: Annotated[Path | None, typer.Option(help="Detector bundle folder; default: the bundled one")] = None,
    workers: Annotated[int | None, typer.Option(help="Requests analysed at once; default: the number of cores")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        help="A web page origin (https://host:port) allowed to call the API from a browser (repeat); default: none")] = None,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request's headers before its connection is closed")] = 15.0,
) -> None:
    """Serve the web page at / and the REST API at /api (OpenAPI docs at /docs), models loaded once."""
    try:
        import uvicorn  # noqa: F401  (the web extra's)

        from ..bundle import resolve
        from ..web import Settings, create_app
    except ImportError as exc:
        fail(f"the web server needs the web extra ({exc.name} is missing): pip install 'deepdive[web]'")
        raise typer.Exit(1) from None
    try:  # a bad --species-model or --detector-model is told here, in one line, not as a start-up traceback
        check(1 <= port <= 65535, f"--port {port}: give a port from 1 to 65535 (ports below 1024 need root)")
        check(finite(max_upload_mb) and max_upload_mb > 0, f"--max-upload-mb {max_upload_mb}: give a size above 0")
        check(workers is None or workers >= 1, f"--workers {workers}: give 1 or more")
        check(finite(header_timeout) and header_timeout > 0, f"--header-timeout {header_timeout}: give seconds above 0")
        resolve(species_model, "species")
        resolve(detector_model or "rightwhale", "detection")
    except DeepdiveError as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    settings = Settings(max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                        species_model=str(species_model) if species_model else None,
                        detector_model=str(detector_model) if detector_model else None,
                        allow_origins=list(allow_origin or []))
    if workers:
        settings.workers = workers
    from ..web.server import can_listen
    from ..web.server import serve as run

    problem = can_listen(host, port)
    if problem:  # the port is taken, or the address is not this machine's
        fail(f"cannot listen on {host}:{port} ({problem}); choose another --port or --host")
        raise typer.Exit(1)
    print(f"deepdive: http://{host}:{port}/  (API docs: http://{host}:{port}/docs; Ctrl+C stops)", file=sys.stderr)
    run(create_app(settings), host, port, header_timeout_s=header_timeout)
