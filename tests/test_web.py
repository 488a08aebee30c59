"""The REST API (FastAPI TestClient, and a live uvicorn server on loopback for concurrency)."""

from __future__ import annotations

import io
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the web extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from deepdive import synth  # noqa: E402
from deepdive.bundle import resolve  # noqa: E402
from deepdive.web import Settings, create_app  # noqa: E402
from deepdive.web.app import display_name  # noqa: E402


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """20 s at 8 kHz with up-calls and whistles, as a file (for the Python API) and bytes (for uploads)."""
    rng = np.random.default_rng(5)
    y = synth.recording("upcall", 8000, 20.0, rng, snr_db=12, n_calls=4)
    y += synth.recording("whistle", 8000, 20.0, rng, snr_db=6, n_calls=2, noise_level=0.0)
    path = tmp_path_factory.mktemp("web") / "calls.wav"
    sf.write(path, (0.5 * y).astype(np.float32), 8000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def tmp_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def client(tmp_dir):
    with TestClient(create_app(Settings(max_upload_bytes=4 * 1024 * 1024, tmp_dir=str(tmp_dir)))) as c:
        yield c


def upload(path_or_bytes, name: str = "calls.wav") -> dict:
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return {"file": (name, data, "audio/wav")}


def test_health_and_models(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["models"] == ["rightwhale", "species"]
    assert health["max_upload_mb"] == 4
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["species"]["task"] == "species" and len(models["species"]["labels"]) == len(resolve(None, "species").labels)
    assert models["rightwhale"]["task"] == "detection" and 0 < models["rightwhale"]["threshold"] < 1
    assert models["rightwhale"]["card"]["positive_label"] == models["rightwhale"]["labels"][1]


def test_classify_is_the_cli_json_for_one_file(client, recording):
    from typer.testing import CliRunner

    from deepdive.cli import app

    r = client.post("/api/classify", files=upload(recording))
    assert r.status_code == 200
    cli = CliRunner().invoke(app, ["classify", str(recording), "--format", "json"])
    expected = json.loads(cli.stdout)[0]
    expected["file"] = "calls.wav"
    got = r.json()
    assert got.keys() == expected.keys()
    assert [x["species"] for x in got["ranking"]] == [x["species"] for x in expected["ranking"]]
    np.testing.assert_allclose([x["probability"] for x in got["ranking"]],
                               [x["probability"] for x in expected["ranking"]], rtol=1e-6)
    top = client.post("/api/classify?top=3", files=upload(recording)).json()["ranking"]
    assert [x["species"] for x in top] == [x["species"] for x in got["ranking"][:3]]


def test_detect_and_scan_match_the_python_api(client, recording):
    import deepdive

    d = client.post("/api/detect", files=upload(recording)).json()
    assert d["file"] == "calls.wav"
    assert d["probability"] == pytest.approx(deepdive.detect(recording), abs=1e-6)
    assert d["detected"] == (d["probability"] >= d["threshold"])

    s = client.post("/api/scan?hop=0.5&threshold=0.05", files=upload(recording)).json()
    assert s["schema"] == "deepdive-events/1" and s["model"] == "rightwhale"
    (f,) = s["files"]
    assert f["file"] == "calls.wav" and f["duration_s"] == pytest.approx(20.0)
    expected = deepdive.scan(recording, hop_s=0.5, threshold=0.05)
    assert [(e["start_s"], e["end_s"], e["windows"]) for e in f["events"]] == \
        [(e["start_s"], e["end_s"], e["windows"]) for e in expected]

    sp = client.post("/api/scan?model=species&threshold=0", files=upload(recording)).json()["files"][0]["events"]
    # threshold 0: every window the species model finds known makes an event (a synthetic right-whale
    # recording at 2 kHz sounds like none of its species, so there may be none); the same as the API's
    # (the same events; their scores within 1e-3: scanned from a worker thread, the 8-bit species model's
    # probabilities can differ from the main thread's in the fifth decimal when BLAS has several threads)
    api = json.loads(json.dumps(deepdive.scan(recording, model="species", threshold=0)))
    assert [{k: v for k, v in e.items() if k not in ("peak", "mean")} for e in sp] == \
        [{k: v for k, v in e.items() if k not in ("peak", "mean")} for e in api]
    assert all(a[k] == pytest.approx(b[k], abs=1e-3) for a, b in zip(sp, api, strict=True) for k in ("peak", "mean"))
    assert {e["label"] for e in sp} <= set(client.get("/api/models").json()["models"][0]["labels"])


def test_recall_picks_the_detector_cards_operating_point(client, recording):
    import deepdive
    from deepdive.bundle import resolve

    card = resolve(None, "detection").card
    points = {o["rule"]: o["threshold"] for o in card["training_tapes_crossval"]["operating_points"]}
    d = client.post("/api/detect?recall=0.95", files=upload(recording)).json()
    assert d["threshold"] == points["recall 0.95"] and d["detected"] == (d["probability"] >= d["threshold"])
    assert client.post("/api/detect", files=upload(recording)).json()["threshold"] == card["threshold"]
    s = client.post("/api/scan?recall=0.5&hop=0.5", files=upload(recording)).json()["files"][0]["events"]
    expected = deepdive.scan(recording, hop_s=0.5, threshold=points["recall 0.5"])
    assert [(e["start_s"], e["end_s"]) for e in s] == [(e["start_s"], e["end_s"]) for e in expected]
    a = client.post("/api/analyze?recall=0.8", files=upload(recording)).json()
    assert a["detection"]["threshold"] == points["recall 0.8"]
    assert a["events"] == [e for e in deepdive.scan(recording, threshold=points["recall 0.8"])]
    r = client.post("/api/detect?recall=0.7", files=upload(recording))
    assert r.status_code == 422 and "0.5, 0.8, 0.9, 0.95" in r.json()["detail"]
    r = client.post("/api/scan?model=species&recall=0.9", files=upload(recording))
    assert r.status_code == 422 and "species model" in r.json()["detail"]
    r = client.post("/api/scan?threshold=0.2&recall=0.9", files=upload(recording))
    assert r.status_code == 422 and "not both" in r.json()["detail"]


def test_spectrogram_png_and_analyze(client, recording):
    r = client.post("/api/spectrogram?fmax=1000", files=upload(recording))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(r.content[16:20], "big"), int.from_bytes(r.content[20:24], "big")
    assert (width, height) == (1200, 360)

    a = client.post("/api/analyze", files=upload(recording)).json()
    assert a["file"] == "calls.wav" and len(a["ranking"]) == len(resolve(None, "species").labels)
    assert a["detection"]["probability"] == client.post("/api/detect", files=upload(recording)).json()["probability"]
    assert a["events"] == client.post("/api/scan", files=upload(recording)).json()["files"][0]["events"]
    s = a["spectrogram"]
    assert s["image"].startswith("data:image/png;base64,")
    assert s["duration_s"] == pytest.approx(20.0) and s["sr"] == 8000 and s["fmax_hz"] == 4000
    box = s["plot"]
    assert 0 < box["left"] < box["right"] < 1 and 0 <= box["top"] < box["bottom"] < 1


def test_audio_gives_a_wav_a_browser_plays(client, tmp_path):
    buf = io.BytesIO()
    y = synth.recording("upcall", 2000, 4.0, np.random.default_rng(0))
    sf.write(buf, y, 2000, format="AIFF", subtype="PCM_16")
    r = client.post("/api/audio", files={"file": ("clip.aiff", buf.getvalue(), "audio/aiff")})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    back, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 8000 and len(back) == 4 * 8000
    assert sf.info(io.BytesIO(r.content)).subtype == "PCM_16"
    assert client.post("/api/audio", files=upload(b"nope", "x.aiff")).status_code == 415


def test_bad_uploads_get_415_422_413_and_say_why(client):
    r = client.post("/api/classify", files={"file": ("report.pdf", b"%PDF-1.4 not audio at all", "application/pdf")})
    assert r.status_code == 415 and r.json()["detail"].startswith("report.pdf: not a readable audio file")

    sr = 4000
    good = wav_bytes(np.zeros(sr * 3, np.float32) + 0.01, sr)
    r = client.post("/api/detect", files=upload(good[:1000], "cut.wav"))
    assert r.status_code == 422 and r.json()["detail"].startswith("cut.wav: truncated")

    r = client.post("/api/detect", files=upload(b"", "empty.wav"))
    assert r.status_code == 422 and "empty" in r.json()["detail"]

    nan = np.full(sr, np.nan, np.float32)
    r = client.post("/api/classify", files=upload(wav_bytes(nan, sr, "FLOAT"), "nan.wav"))
    assert r.status_code == 422 and "NaN" in r.json()["detail"]

    assert client.post("/api/classify").status_code == 422  # no file field
    assert client.post("/api/scan?model=/etc/passwd", files=upload(good)).status_code == 422  # only named models
    assert client.post("/api/classify?top=0", files=upload(good)).status_code == 422

    big = b"\0" * (5 * 1024 * 1024)
    r = client.post("/api/classify", files=upload(big, "big.wav"))
    assert r.status_code == 413 and "4 MB" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(6):
            yield b"\0" * (1024 * 1024)

    r = client.post("/api/classify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413


def test_no_client_path_and_no_temporary_file_left(client, tmp_dir, recording):
    r = client.post("/api/detect", files=upload(recording, "../../../etc/cron.d/calls.wav"))
    assert r.status_code == 200 and r.json()["file"] == "calls.wav"
    client.post("/api/detect", files=upload(b"not audio", "..\\..\\x.wav"))
    assert not Path("/etc/cron.d/calls.wav").exists()
    assert list(tmp_dir.iterdir()) == []  # every request above, good or bad, removed its temporary file


def test_display_name():
    assert display_name("C:\\Users\\me\\rec 01.WAV") == "rec 01.WAV"
    assert display_name("/abs/../x.flac") == "x.flac"
    assert display_name("") == display_name(None) == display_name("../") == "upload"
    assert display_name("bad\x00name\n.wav") == "badname.wav"


def test_static_page_and_offline_docs(client):
    page = client.get("/").text
    assert '<input type="file"' in page and "/static/app.js" in page
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs").text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    for html in (page, docs):  # every script, stylesheet and image comes from the app itself
        assets = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"]*)"', html)
        assert assets and all(a.startswith("/") or a.startswith("data:") for a in assets), assets
    for code in (client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in code and "https://" not in code and "@import" not in code
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/health", "/api/models", "/api/classify", "/api/detect", "/api/scan", "/api/spectrogram",
            "/api/audio", "/api/analyze"} <= set(paths)


def test_inference_runs_off_the_event_loop(live_server, recording, monkeypatch):
    """While one classify request is held inside the model, other requests are still answered."""
    import httpx

    import deepdive.predict

    entered, release = threading.Event(), threading.Event()
    real = deepdive.predict.classify

    def held(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(deepdive.predict, "classify", held)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{live_server}/api/classify", files=upload(recording), timeout=120)
        assert entered.wait(60)
        try:
            assert httpx.get(f"{live_server}/api/health", timeout=30).status_code == 200
            detect = httpx.post(f"{live_server}/api/detect", files=upload(recording), timeout=60)
            assert detect.status_code == 200
            assert not slow.done()  # answered while the classify request was still inside the model
        finally:
            release.set()
        assert slow.result().status_code == 200


def test_serve_command_reports_a_bad_model_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app

    r = CliRunner().invoke(app, ["serve", "--species-model", str(tmp_path / "nowhere")])
    assert r.exit_code == 1
    assert "no such model folder" in r.stderr and "Traceback" not in r.stderr


def test_deepdive_serve_answers_on_loopback(tmp_path):
    """The command itself: `deepdive serve --port P --max-upload-mb 1` starts, answers, and stops."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("deepdive")
    server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--max-upload-mb", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = None
        for _ in range(600):  # bounded wait for start-up
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        assert health and health["status"] == "ok" and health["max_upload_mb"] == 1
        r = httpx.post(f"http://127.0.0.1:{port}/api/classify", files={"file": ("x.wav", b"\0" * 2_000_000)})
        assert r.status_code == 413
    finally:
        server.terminate()
        server.wait(30)


# ---------------------------------------------------------------- the real `deepdive serve`, as an attacker tries it


@pytest.fixture(scope="module")
def real_server():
    """`deepdive serve` itself, with a 1 s header timeout: its base URL."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "deepdive", "serve", "--port", str(port), "--header-timeout", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(30)


NO_PATH = re.compile(r"(^|[\s'\"(])/[\w.-]+/")  # an absolute path in an answer


def test_real_server_refuses_bad_hops_and_names_no_path(real_server, recording):
    import httpx

    data = recording.read_bytes()
    for hop in ("inf", "1e308", "nan", "-1", "0"):
        r = httpx.post(f"{real_server}/api/scan?hop={hop}", files={"file": ("calls.wav", data)}, timeout=60)
        assert r.status_code == 422, (hop, r.text)
    r = httpx.post(f"{real_server}/api/scan?hop=1e-300", files={"file": ("calls.wav", data)}, timeout=120)
    assert r.status_code == 200  # rounded up to one STFT frame: bounded work
    r = httpx.post(f"{real_server}/api/detect?recall=0.3", files={"file": ("calls.wav", data)}, timeout=60)
    assert r.status_code == 422 and "0.3" in r.json()["detail"] and not NO_PATH.search(r.text), r.text
    r = httpx.post(f"{real_server}/api/classify", files={"file": ("notes.wav", b"not audio at all")}, timeout=60)
    assert r.status_code == 415 and "notes.wav" in r.json()["detail"] and not NO_PATH.search(r.text), r.text
    y = synth.recording("upcall", 2000, 2.0, np.random.default_rng(1), n_calls=1)
    huge = wav_bytes((y / np.abs(y).max() * 3e38).astype(np.float32), 2000, "FLOAT")
    r = httpx.post(f"{real_server}/api/detect", files={"file": ("huge.wav", huge)}, timeout=60)
    assert r.status_code == 200 and 0 <= r.json()["probability"] <= 1  # never null


def test_real_server_headers_and_cross_origin(real_server, recording):
    import httpx

    page = httpx.get(f"{real_server}/")
    for h in (httpx.get(f"{real_server}/api/health").headers, page.headers):
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "access-control-allow-origin" not in page.headers
    data = recording.read_bytes()
    r = httpx.post(f"{real_server}/api/detect", files={"file": ("calls.wav", data)},
                   headers={"Origin": "http://evil.example"}, timeout=60)
    assert r.status_code == 403 and "--allow-origin" in r.json()["detail"]
    assert "access-control-allow-origin" not in r.headers
    same = httpx.post(f"{real_server}/api/detect", files={"file": ("calls.wav", data)},
                      headers={"Origin": real_server}, timeout=60)
    assert same.status_code == 200


def test_real_server_closes_connections_that_never_finish_their_headers(real_server):
    """Half-sent requests held open: the server closes them after --header-timeout, and answers
    /api/health all along."""
    import socket
    import time

    import httpx

    host, port = real_server.removeprefix("http://").split(":")
    held = []
    for _ in range(50):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multi")  # and nothing more
        held.append(s)
    assert httpx.get(f"{real_server}/api/health", timeout=5).status_code == 200
    time.sleep(2.5)
    closed = 0
    for s in held:
        s.settimeout(2)
        try:
            closed += s.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            closed += 1
        s.close()
    assert closed == len(held)
    assert httpx.get(f"{real_server}/api/health", timeout=5).status_code == 200


def test_slow_uploads_are_ended(tmp_path):
    """An upload that stalls, or trickles under the minimum rate after the grace period: 408."""
    import socket
    import time

    import uvicorn

    settings = Settings(workers=1, body_idle_s=1.0, body_grace_s=1.0, min_upload_rate=10_000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.1)
    try:
        head = (b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
                b"filename=\"x.wav\"\r\n\r\n")
        for trickle in (False, True):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(head)
                c.settimeout(10)
                if trickle:  # 20 bytes a second, well under the minimum rate
                    answer = b""
                    for _ in range(60):
                        try:
                            c.sendall(b"x" * 20)
                        except OSError:
                            break
                        c.setblocking(False)
                        try:
                            answer += c.recv(4096)
                        except BlockingIOError:
                            pass
                        c.setblocking(True)
                        if answer:
                            break
                        time.sleep(1)
                else:  # stalls
                    answer = c.recv(4096)
                assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_scan_request_is_bounded_in_windows(recording):
    with TestClient(create_app(Settings(workers=1, max_windows=50))) as client:
        r = client.post("/api/scan?hop=0.05", files={"file": ("calls.wav", recording.read_bytes())})
        assert r.status_code == 422 and "more than this server scores" in r.json()["detail"]
        assert client.post("/api/scan", files={"file": ("calls.wav", recording.read_bytes())}).status_code == 200


def test_work_stops_when_called_off():
    """The web server sets the event when its client goes away: reading audio stops at the next block."""
    import threading as th

    from deepdive import audio
    from deepdive.audio import Cancelled, cancel_when

    stop = th.Event()
    y = np.zeros(16000 * 5, np.float32)
    with cancel_when(stop):
        assert len(list(audio.blocks(y, 16000, 16000))) == 1
        stop.set()
        with pytest.raises(Cancelled):
            list(audio.blocks(y, 16000, 16000))
    assert len(list(audio.blocks(y, 16000, 16000))) == 1  # outside the block: no effect
