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
`workers` slots, so concurrent requests neither block the loop nor pile up unbounded memory. A client
that disconnects stops its work: before it starts (while it waits for a slot), or at the next block of
audio read. A scan is bounded: at most `max_windows` windows a request (a tiny hop over a long file).

Slow clients. An upload must keep moving: no bytes for `body_idle_s`, or under `min_upload_rate`
bytes a second once `body_grace_s` have passed, ends it with 408. `deepdive serve` also closes a
connection whose request headers are not complete within `header_timeout_s` (see `serve`).

Errors and paths. No answer names a server path: error lines have the upload's temporary path replaced
by the client's file name, and any other absolute path (a model folder, say) cut to its last part.

Headers. Every answer carries X-Content-Type-Options: nosniff, X-Frame-Options: DENY and
Referrer-Policy: no-referrer; the page and the API a Content-Security-Policy of 'self' (the API docs
pages, whose Swagger UI needs its inline script, not). Cross-origin requests are closed by default: a
request whose Origin is not the server's own (nor one of `allow_origins`) gets 403, and CORS headers
are sent only for `allow_origins`.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated

import anyio
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
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
    max_windows: int = 50_000  # windows one scan request may score (about 14 h at the detector's default hop)
    body_idle_s: float = 30.0
    body_grace_s: float = 30.0
    min_upload_rate: float = 16 * 1024  # bytes/s, after the grace period
    allow_origins: list[str] = field(default_factory=list)


class ScanModel(StrEnum):
    rightwhale = "rightwhale"
    species = "species"


class UploadTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"upload larger than the server's limit of {limit / MB:g} MB; "
                              "cut the recording or start the server with a larger --max-upload-mb")


class SlowUpload(HTTPException):
    def __init__(self, why: str):
        super().__init__(408, f"upload too slow ({why}); send the file again over a faster connection",
                         headers={"Connection": "close"})


class LimitUploadSize:
    """ASGI middleware: 413 for request bodies over `limit` bytes, announced or counted; 408 for a
    body that stalls `idle_s` or, after `grace_s`, arrives slower than `min_rate` bytes a second."""

    def __init__(self, app, limit: int, idle_s: float = 30.0, grace_s: float = 30.0, min_rate: float = 16 * 1024):
        self.app, self.limit = app, limit
        self.idle_s, self.grace_s, self.min_rate = idle_s, grace_s, min_rate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": UploadTooLarge(self.limit).detail}, status_code=413,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0
        started = time.monotonic()
        body_done = False

        async def counted():
            nonlocal received, body_done
            if body_done:  # after the body, receive() waits for a disconnect: no deadline on that
                return await receive()
            with anyio.move_on_after(self.idle_s) as idle:
                message = await receive()
            if idle.cancel_called:
                raise SlowUpload(f"nothing received for {self.idle_s:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.limit:
                    raise UploadTooLarge(self.limit)
                elapsed = time.monotonic() - started
                if not body_done and elapsed > self.grace_s and received / elapsed < self.min_rate:
                    raise SlowUpload(f"{received / elapsed / 1024:.1f} KB/s")
            return message

        return await self.app(scope, counted, send)


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]
CSP = (b"default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; object-src 'none'; "
       b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
DOCS_PATHS = ("/docs", "/redoc", "/static-offline-docs")


class Guard:
    """ASGI middleware: security headers on every answer, and 403 for a request from another origin
    (a page elsewhere posting to this server) unless it is one of `allow_origins`."""

    def __init__(self, app, allow_origins: list[str]):
        self.app, self.allow = app, {o.rstrip("/") for o in allow_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1").rstrip("/")
        if origin and origin != "null" and origin not in self.allow:
            own = {f"{scope.get('scheme', 'http')}://{headers.get(b'host', b'').decode('latin-1')}"}
            if origin not in own:
                response = JSONResponse({"detail": "cross-origin requests are not allowed by this server; start it "
                                                   "with --allow-origin for that page's origin"}, status_code=403)
                return await response(scope, receive, self._with_headers(scope, send))
        return await self.app(scope, receive, self._with_headers(scope, send))

    @staticmethod
    def _with_headers(scope, send):
        docs = scope.get("path", "").startswith(DOCS_PATHS)

        async def sending(message):
            if message["type"] == "http.response.start":
                extra = SECURITY_HEADERS + ([] if docs else [(b"content-security-policy", CSP)])
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        return sending


ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\"(),]+/)+([^\s/:'\"(),]*)")


def public_message(text: str) -> str:
    """An error line fit for a client: every absolute path cut to its last part."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(1) or "(folder)", text)


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
        """The error's line with the temporary path replaced by the client's file name, and no other
        server path in it."""
        return public_message(str(exc).replace(str(self.path), self.name))


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
    app.add_middleware(LimitUploadSize, limit=settings.max_upload_bytes, idle_s=settings.body_idle_s,
                       grace_s=settings.body_grace_s, min_rate=settings.min_upload_rate)
    if settings.allow_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.allow_origins, allow_methods=["GET", "POST"])
    app.add_middleware(Guard, allow_origins=settings.allow_origins)

    async def run(request: Request, fn, *args):
        """fn(*args) in a worker thread once a slot is free; stopped when the client goes away (before
        it starts, or at its next block of audio)."""
        from ..audio import Cancelled, cancel_when

        stop = threading.Event()

        def work():
            if stop.is_set():
                raise Cancelled("the client disconnected")
            with cancel_when(stop):
                return fn(*args)

        async def watch(scope):
            while not await request.is_disconnected():
                await anyio.sleep(0.25)
            stop.set()
            scope.cancel()

        outcome: dict = {}

        async def guarded(scope):
            try:
                outcome["result"] = await anyio.to_thread.run_sync(work, limiter=limiter)
            except Exception as exc:  # raised below, not as an exception group
                outcome["error"] = exc
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, tg.cancel_scope)
            tg.start_soon(guarded, tg.cancel_scope)
        if "error" in outcome:
            raise outcome["error"]
        if "result" not in outcome:  # the watcher cancelled the wait: the client is gone
            raise Cancelled("the client disconnected")
        return outcome["result"]

    async def handle(request: Request, file: UploadFile, work):
        """Save the upload, run `work(path, name)` in a worker thread, map our errors to HTTP."""
        from ..audio import Cancelled

        async with Upload(file, settings.tmp_dir) as up:
            try:
                return await run(request, work, up.path, up.name)
            except Cancelled:
                raise HTTPException(499, "the client disconnected") from None
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

        return {"file": name, **classify(path, model=models["species"], top=top).as_dict()}

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
            raise HTTPException(422, public_message(str(exc))) from None

    def events(path, name, model: str, hop_s=None, threshold=None) -> dict:
        from .. import audio
        from ..scanning import SCHEMA_VERSION, scan, window_count

        duration = audio.info(path).duration_s
        n = window_count(duration, models[model], hop_s)
        if n > settings.max_windows:
            raise DeepdiveError(f"{path}: a hop of {hop_s:g} s makes {n:,} windows of this recording, more than this "
                                f"server scores for one request ({settings.max_windows:,}); use a longer hop")
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
    async def api_classify(request: Request, file: Annotated[UploadFile, File(description="A recording")],
                           top: Annotated[int | None, Query(ge=1, description="Only the K most probable")] = None
                           ) -> dict:
        """Rank every species for one recording: the object `deepdive classify --format json` gives per file."""
        return await handle(request, file, lambda p, n: ranking(p, n, top))

    @app.post("/api/detect", summary="Does a right whale call in it?")
    async def api_detect(request: Request, file: Annotated[UploadFile, File(description="A clip or recording")],
                         recall: Annotated[float | None, Query(gt=0, le=1, description=RECALL)] = None) -> dict:
        """Probability that a right whale calls (in the likeliest window), and whether it passes the threshold."""
        t = threshold_for(None, recall)
        return await handle(request, file, lambda p, n: detection(p, n, t))

    @app.post("/api/scan", summary="Events of a long recording")
    async def api_scan(request: Request, file: Annotated[UploadFile, File(description="A recording of any length")],
                       model: ScanModel = ScanModel.rightwhale,
                       hop: Annotated[float | None, Query(gt=0, le=86400, allow_inf_nan=False,
                                                          description="Window hop (s); default half a window")] = None,
                       threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
                       recall: Annotated[float | None, Query(gt=0, le=1, description=RECALL)] = None) -> dict:
        """Events of a long recording: the `deepdive-events/1` JSON that `deepdive scan --format json` writes."""
        t = threshold_for(threshold, recall, model.value)
        return await handle(request, file, lambda p, n: events(p, n, model.value, hop, t))

    @app.post("/api/spectrogram", summary="Spectrogram as a PNG", response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "PNG with time and frequency axes"}})
    async def api_spectrogram(request: Request, file: Annotated[UploadFile, File(description="A recording")],
                              fmax: Annotated[float | None, Query(gt=0, le=1e6, allow_inf_nan=False,
                                                    description="Top of the frequency axis (Hz)")] = None
                              ) -> Response:
        """The whole recording's spectrogram as a PNG."""
        png, _ = await handle(request, file, lambda p, n: spectrogram(p, fmax))
        return Response(png, media_type="image/png")

    @app.post("/api/audio", summary="A WAV a browser plays", response_class=Response,
              responses={200: {"content": {"audio/wav": {}}, "description": "16-bit mono WAV"}})
    async def api_audio(request: Request, file: Annotated[UploadFile, File(description="A recording")]) -> Response:
        """The recording as a WAV a browser plays: 16-bit mono, resampled into 8-48 kHz when outside it
        (browsers refuse 2 kHz audio, the right-whale challenge's rate, and AIFF)."""
        return Response(await handle(request, file, lambda p, n: playable_wav(p)), media_type="audio/wav")

    @app.post("/api/analyze", summary="Everything the page shows, from one upload")
    async def api_analyze(request: Request, file: Annotated[UploadFile, File(description="A recording")],
                          fmax: Annotated[float | None, Query(gt=0, le=1e6, allow_inf_nan=False,
                                                    description="Top of the frequency axis (Hz)")] = None,
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

        return await handle(request, file, work)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
