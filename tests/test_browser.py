"""The page at / in a real browser: Playwright for Python driving Debian's chromium (never a downloaded one)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepdive import synth
from deepdive.bundle import resolve

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("DEEPDIVE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium (make test does it as root)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    failed = []
    # media loads of the local blob may be cancelled when the page closes; anything else failing counts
    page.on("requestfailed", lambda r: None if r.url.startswith("blob:") else failed.append(r.url))
    page.on("request", lambda r: None if r.url.startswith((live_server, "data:", "blob:")) else failed.append(r.url))
    page.goto(live_server + "/")
    yield page
    context.close()
    assert failed == [], f"the page asked for something the app does not serve: {failed}"


@pytest.fixture(scope="module")
def calls_wav(tmp_path_factory) -> Path:
    rng = np.random.default_rng(11)
    y = synth.recording("upcall", 8000, 30.0, rng, snr_db=15, n_calls=5)
    path = tmp_path_factory.mktemp("browser") / "upcalls.wav"
    sf.write(path, y, 8000, subtype="PCM_16")
    return path


def test_upload_shows_podium_ranking_spectrogram_and_events(page, calls_wav, live_server):
    import httpx

    page.set_input_files("#file", str(calls_wav))
    page.wait_for_selector("#results:not([hidden])", timeout=120_000)
    assert page.text_content("#filename") == "upcalls.wav"

    expected = httpx.post(f"{live_server}/api/analyze", files={"file": ("upcalls.wav", calls_wav.read_bytes())},
                          timeout=120).json()
    medals = page.locator("#podium li")
    assert medals.count() == 3
    for k, medal in enumerate(("gold", "silver", "bronze")):
        item = page.locator(f"#podium li.{medal}")
        assert item.get_attribute("data-species") == expected["ranking"][k]["species"]
        assert item.locator(".prob").text_content().endswith("%")
    # the podium stands silver, gold, bronze from left to right, gold the tallest
    boxes = {m: page.locator(f"#podium li.{m}").bounding_box() for m in ("gold", "silver", "bronze")}
    assert boxes["silver"]["x"] < boxes["gold"]["x"] < boxes["bronze"]["x"]
    assert boxes["gold"]["height"] > boxes["silver"]["height"] > boxes["bronze"]["height"]

    rows = page.locator("#ranking li")
    assert rows.count() == len(expected["ranking"]) == len(resolve(None, "species").labels)
    assert rows.nth(0).locator(".species").text_content() == expected["ranking"][0]["species"]
    widths = [rows.nth(i).locator(".bar div").bounding_box()["width"] for i in range(rows.count())]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0

    # the spectrogram image has loaded and is drawn with its real size
    assert page.evaluate("() => { const i = document.getElementById('spectrogram'); "
                         "return i.complete && i.naturalWidth === 1200 && i.naturalHeight === 360; }")
    # one mark per right-whale event, placed at its start along the time axis of the plot
    marks = page.locator("#events .event")
    assert marks.count() == len(expected["events"])
    area = page.locator("#plot-area").bounding_box()
    for i, e in enumerate(expected["events"]):
        box = marks.nth(i).bounding_box()
        assert box["x"] - area["x"] == pytest.approx(area["width"] * e["start_s"] / 30.0, abs=2)
    assert page.locator("#player").get_attribute("src").startswith("blob:")
    page.wait_for_function("() => document.getElementById('player').duration > 0", timeout=60_000)
    assert page.evaluate("() => document.getElementById('player').duration") == pytest.approx(30.0, abs=0.05)
    assert page.locator("#player-note").is_hidden()  # 8 kHz WAV: the browser plays the file itself
    assert "detected" in page.text_content("#detection")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web-page.png"), full_page=True)


def test_the_threshold_menu_asks_for_another_operating_point(page, calls_wav):
    from deepdive.bundle import resolve

    points = {o["rule"]: o["threshold"] for o in resolve(None, "detection").card["training_tapes_crossval"]["operating_points"]}
    page.set_input_files("#file", str(calls_wav))
    page.wait_for_selector("#results:not([hidden])", timeout=120_000)
    own = f"(threshold {round(100 * resolve(None, 'detection').threshold)}%)"
    assert own in page.text_content("#detection")
    with page.expect_request(lambda r: "/api/analyze?recall=0.5" in r.url):
        page.select_option("#recall", "0.5")
    wanted = f"(threshold {round(100 * points['recall 0.5'])}%)"
    page.wait_for_function("t => document.getElementById('detection').textContent.includes(t)", arg=wanted, timeout=120_000)


def test_non_audio_upload_shows_the_error(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are field notes, not a recording\n")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    text = page.text_content("#error")
    assert "notes.wav" in text and "415" in text and "not a readable audio file" in text
    assert page.locator("#results").is_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web-error.png"))


def test_drop_a_file_on_the_page(page, calls_wav):
    """Drag and drop: a DataTransfer holding the file, dropped on the drop zone."""
    data = list(calls_wav.read_bytes())
    page.evaluate("""(bytes) => {
        const file = new File([new Uint8Array(bytes)], 'dropped.wav', {type: 'audio/wav'});
        const dt = new DataTransfer();
        dt.items.add(file);
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
    }""", data)
    page.wait_for_selector("#results:not([hidden])", timeout=120_000)
    assert page.text_content("#filename") == "dropped.wav"
    assert page.locator("#podium li").count() == 3


@pytest.mark.real
def test_real_right_whale_calls_are_marked_on_the_spectrogram(page, live_server, tmp_path):
    """Real challenge clips (calls and noise) joined into one recording: the page marks its events."""
    import csv

    import deepdive
    from conftest import RIGHTWHALE

    rows = list(csv.DictReader(open(RIGHTWHALE / "train.csv")))
    clip = lambda name: sf.read(RIGHTWHALE / "train" / name, dtype="float32")[0]  # noqa: E731
    calls = [r["clip_name"] for r in rows if r["label"] == "1"][:40]
    calls = [c for c in calls if deepdive.detect(RIGHTWHALE / "train" / c) >= 0.9][:3]
    quiet = [r["clip_name"] for r in rows if r["label"] == "0"][:200]  # noise clips the detector is sure of
    quiet = [c for c in quiet if deepdive.detect(RIGHTWHALE / "train" / c) < 0.05][:6]
    assert len(calls) == 3 and len(quiet) == 6
    parts = [clip(quiet[0]), clip(quiet[1]), clip(calls[0]), clip(quiet[2]), clip(quiet[3]), clip(calls[1]),
             clip(quiet[4]), clip(calls[2]), clip(quiet[5])]
    path = tmp_path / "three_calls.wav"
    sf.write(path, np.concatenate(parts), 2000, subtype="PCM_16")

    page.select_option("#fmax", "1000")
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#results:not([hidden])", timeout=120_000)
    marks = page.locator("#events .event")
    assert marks.count() >= 1
    assert page.locator("#events-table tbody tr").count() == marks.count()
    area = page.locator("#plot-area").bounding_box()
    duration = len(np.concatenate(parts)) / 2000
    call_spans = [(4.0, 6.0), (10.0, 12.0), (14.0, 16.0)]  # where the three calls lie (2 s clips)
    for i in range(marks.count()):
        box = marks.nth(i).bounding_box()
        start = (box["x"] - area["x"]) / area["width"] * duration
        end = (box["x"] + box["width"] - area["x"]) / area["width"] * duration
        assert any(start < b + 0.5 and end > a - 0.5 for a, b in call_spans), (start, end)
    assert "Right whale detected" in page.text_content("#detection")
    # chromium does not play 2 kHz audio: the page falls back to the server's playable copy
    page.wait_for_selector("#player-note:not([hidden])", timeout=60_000)
    page.wait_for_function("() => document.getElementById('player').duration > 0", timeout=60_000)
    assert page.evaluate("() => document.getElementById('player').duration") == pytest.approx(duration, abs=0.05)
    page.screenshot(path=str(SCREENSHOTS / "web-page-rightwhale.png"), full_page=True)
