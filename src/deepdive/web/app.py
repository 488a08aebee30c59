"""FastAPI app: a REST API over the bundled models and the page at /.

Uploads. A request body larger than `max_upload_bytes` is refused with 413: at once when its
Content-Length says so, otherwise as soon as the bytes received pass the limit (a chunked upload
is never read further). Each upload is copied to a temporary file whose name the server makes (only
a suffix from a fixed list of audio suffixes is taken from the client's file name, so that the
format reader sees the usual extension); it is removed when the request ends, whatever happens.
The client's file name appears only in the answers, never in a path.

Errors. A file no audio reader can open: 415. An audio file that cannot be used (truncated, empty,
too short, NaN samples, unusable sample rate): 422. A model that fails on the server: 500. All answer
{"detail": "<file>: what is wrong"}.

Docs. /docs (Swagger UI) and /redoc are served with their scripts from the app (fastapi-offline).

Work. Inference runs in worker threads (never on the event loop) through a capacity limiter of
`workers` slots, so concurrent requests neither block the loop nor pile up unbounded memory.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated

import anyio
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..errors import DeepdiveError, ModelError, UnreadableAudioError

STATIC = Path(__file__).parent / "static"
MB = 1024 * 1024
UPLOAD_CHUNK = MB
PLAYABLE_SR = (8000, 48000)  # what browsers' audio elements play
RECALL = ("The detector card's operating point that found this share of the calls on its training tapes "
          "(0.5, 0.8, 0.9 or 0.95), instead of its own threshold")


@dataclass
class Settings:
    """What `deepdive serve` can change. Models are the bundled ones unless folders are given (by the
    operator; a client only ever names "species" or "rightwhale")."""

    max_upload_bytes: int = 200 * MB
    species_model: str | None = None
    detector_model: str | None = None
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    tmp_dir: str | None = None


class ScanModel(StrEnum):
    rightwhale = "rightwhale"
    species = "species"


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"upload larger than the server's limit of {limit / MB:g} MB; "
                              "cut the recording or start the server with a larger --max-upload-mb")


class LimitUploadSize:
    """ASGI middleware: 413 for request bodies over `limit` bytes, announced or counted."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": UploadTooLarge(self.limit).detail}, status_code=413,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise UploadTooLarge(self.limit)
            return message

        return await self.app(scope, counted, send)


def display_name(filename: str | None) -> str:
    """The client's file name as shown in answers: its last component, printable, at most 200 chars."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] if name.strip(".") else "upload"


def _suffix(name: str) -> str:
    from ..datasets.folders import AUDIO_SUFFIXES

    suffix = PurePosixPath(name).suffix.lower()
    return next((s for s in sorted(AUDIO_SUFFIXES) if s == suffix), ".audio")


class Upload:
    """An uploaded file saved to a server-named temporary file, removed on exit."""

    def __init__(self, upload: UploadFile, tmp_dir: str | None):
        self.upload, self.tmp_dir = upload, tmp_dir
        self.name = display_name(upload.filename)
        self.path: Path | None = None

    async def __aenter__(self) -> Upload:
        fd, path = tempfile.mkstemp(prefix="deepdive-", suffix=_suffix(self.name), dir=self.tmp_dir)
        self.path = Path(path)
        try:
            with os.fdopen(fd, "wb") as out:
                await anyio.to_thread.run_sync(shutil.copyfileobj, self.upload.file, out, UPLOAD_CHUNK)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        await self.upload.close()

    def message(self, exc: DeepdiveError) -> str:
        """The error's line with the temporary path replaced by the client's file name."""
        return str(exc).replace(str(self.path), self.name)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, with the models loaded once at start-up."""
    settings = settings or Settings()
    models: dict = {}
    limiter = anyio.CapacityLimiter(settings.workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ..bundle import resolve

        models["species"] = resolve(settings.species_model, "species")
        models["rightwhale"] = resolve(settings.detector_model or "rightwhale", "detection")
        for bundle in models.values():
            bundle.session  # noqa: B018  (load ONNX Runtime sessions now, not in the first request)
        yield

    # FastAPIOffline: FastAPI whose /docs and /redoc load Swagger UI and ReDoc from the app, not a CDN
    app = FastAPIOffline(title="deepdive", version=__version__, lifespan=lifespan,
                         description="Which marine mammals call in a recording, and where a right whale calls. "
                                     "Upload a file (wav, aiff, flac, ...) as multipart field `file`.")
    app.add_middleware(LimitUploadSize, limit=settings.max_upload_bytes)

    async def run(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    async def handle(file: UploadFile, work):
        """Save the upload, run `work(path, name)` in a worker thread, map our errors to HTTP."""
        async with Upload(file, settings.tmp_dir) as up:
            try:
                return await run(work, up.path, up.name)
            except UnreadableAudioError as exc:
                raise HTTPException(415, up.message(exc)) from None
            except ModelError as exc:  # the server's model, not the client's file
                raise HTTPException(500, up.message(exc)) from None
            except DeepdiveError as exc:  # audio that cannot be used: truncated, empty, NaN, too short, ...
                raise HTTPException(422, up.message(exc)) from None

    def card_summary(name: str) -> dict:
        b = models[name]
        return {"name": name, "task": b.task, "labels": b.labels, "scientific_names": b.scientific_names,
                "window_s": b.features.window_s, "sr": b.features.sr,
                "threshold": b.threshold if b.task == "detection" else None, "card": b.card}

    def ranking(path, name, top=None) -> dict:
        from ..predict import classify

        return {"file": name, "ranking": classify(path, model=models["species"], top=top)}

    def detection(path, name, threshold=None) -> dict:
        from ..predict import detect

        p = detect(path, model=models["rightwhale"])
        t = models["rightwhale"].pick_threshold(threshold)
        return {"file": name, "probability": round(p, 6), "detected": p >= t, "threshold": t}

    def threshold_for(threshold: float | None, recall: float | None, model: str = "rightwhale") -> float:
        """`threshold`, or the detector card's operating point for `recall` (422 when it has none), or
        the model's own."""
        try:
            return models[model].pick_threshold(threshold, recall)
        except DeepdiveError as exc:
            raise HTTPException(422, str(exc)) from None

    def events(path, name, model: str, hop_s=None, threshold=None) -> dict:
        from .. import audio
        from ..scanning import SCHEMA_VERSION, scan

        duration = audio.info(path).duration_s
        found = scan(path, model=models[model], hop_s=hop_s, threshold=threshold)
        return {"schema": SCHEMA_VERSION, "model": model,
                "files": [{"file": name, "duration_s": round(duration, 3), "events": found}]}

    def spectrogram(path, fmax=None, marks=None) -> tuple[bytes, dict]:
        from ..plots import spectrogram_png

        return spectrogram_png(path, fmax=fmax, events=marks)

    def playable_wav(path) -> bytes:
        import io

        import soundfile as sf

        from .. import audio

        rate = min(max(audio.info(path).sr, PLAYABLE_SR[0]), PLAYABLE_SR[1])
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", samplerate=rate, channels=1, format="WAV", subtype="PCM_16") as out:
            for block in audio.blocks(path, rate):
                out.write(block)
        return buf.getvalue()

    @app.get("/api/health", summary="Health")
    async def health() -> dict:
        """Liveness: the version and the models loaded."""
        return {"status": "ok", "version": __version__, "models": sorted(models),
                "max_upload_mb": round(settings.max_upload_bytes / MB, 3)}

    @app.get("/api/models", summary="The models and their cards")
    async def list_models() -> dict:
        """The models this server runs, with their cards (labels, features, training, test metrics)."""
        return {"models": [card_summary(n) for n in ("species", "rightwhale")]}

    @app.post("/api/classify", summary="Rank the species of a recording")
    async def api_classify(file: Annotated[UploadFile, File(description="A recording")],
                           top: Annotated[int | None, Query(ge=1, description="Only the K most probable")] = None
                           ) -> dict:
        """Rank every species for one recording: the object `deepdive classify --format json` gives per file."""
        return await handle(file, lambda p, n: ranking(p, n, top))

    @app.post("/api/detect", summary="Does a right whale call in it?")
    async def api_detect(file: Annotated[UploadFile, File(description="A clip or recording")],
                         recall: Annotated[float | None, Query(gt=0, le=1, description=RECALL)] = None) -> dict:
        """Probability that a right whale calls (in the likeliest window), and whether it passes the threshold."""
        t = threshold_for(None, recall)
        return await handle(file, lambda p, n: detection(p, n, t))

    @app.post("/api/scan", summary="Events of a long recording")
    async def api_scan(file: Annotated[UploadFile, File(description="A recording of any length")],
                       model: ScanModel = ScanModel.rightwhale,
                       hop: Annotated[float | None, Query(gt=0, description="Window hop (s); default half a window")] = None,
                       threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
                       recall: Annotated[float | None, Query(gt=0, le=1, description=RECALL)] = None) -> dict:
        """Events of a long recording: the `deepdive-events/1` JSON that `deepdive scan --format json` writes."""
        t = threshold_for(threshold, recall, model.value)
        return await handle(file, lambda p, n: events(p, n, model.value, hop, t))

    @app.post("/api/spectrogram", summary="Spectrogram as a PNG", response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "PNG with time and frequency axes"}})
    async def api_spectrogram(file: Annotated[UploadFile, File(description="A recording")],
                              fmax: Annotated[float | None, Query(gt=0, description="Top of the frequency axis (Hz)")] = None
                              ) -> Response:
        """The whole recording's spectrogram as a PNG."""
        png, _ = await handle(file, lambda p, n: spectrogram(p, fmax))
        return Response(png, media_type="image/png")

    @app.post("/api/audio", summary="A WAV a browser plays", response_class=Response,
              responses={200: {"content": {"audio/wav": {}}, "description": "16-bit mono WAV"}})
    async def api_audio(file: Annotated[UploadFile, File(description="A recording")]) -> Response:
        """The recording as a WAV a browser plays: 16-bit mono, resampled into 8-48 kHz when outside it
        (browsers refuse 2 kHz audio, the right-whale challenge's rate, and AIFF)."""
        return Response(await handle(file, lambda p, n: playable_wav(p)), media_type="audio/wav")

    @app.post("/api/analyze", summary="Everything the page shows, from one upload")
    async def api_analyze(file: Annotated[UploadFile, File(description="A recording")],
                          fmax: Annotated[float | None, Query(gt=0, description="Top of the frequency axis (Hz)")] = None,
                          recall: Annotated[float | None, Query(gt=0, le=1, description=RECALL)] = None) -> dict:
        """What the page shows, from one upload: the ranking, the right-whale detection and events, and
        the spectrogram (a PNG data URL with the plot's box, to place the events along its time axis)."""
        t = threshold_for(None, recall)

        def work(path, name):
            out = {**ranking(path, name), "detection": detection(path, name, t),
                   "events": events(path, name, "rightwhale", threshold=t)["files"][0]["events"]}
            png, meta = spectrogram(path, fmax)
            out["spectrogram"] = {"image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"), **meta}
            return out

        return await handle(file, work)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
