"""The downloader against a local HTTP server serving pages in the Watkins site's format."""

import functools
import http.server
import io
import json
import threading

import numpy as np
import pytest
import soundfile as sf

from deepdive.datasets import load_watkins
from deepdive.datasets.watkins_site import download, list_cuts, list_species
from deepdive.errors import DownloadError

INDEX = """<html><body><div class="row">
<div class="large-3 columns"><a href="bestOf.cfm?code=AA3A">Northern Right Whale</a></div>
<div class="large-3 columns"><a href="bestOf.cfm?code=BA2A">Sperm Whale</a></div>
<div class="large-3 columns"><a href="fullCuts.cfm">All cuts</a></div></div></body></html>"""


def _species_page(cuts):
    rows = "".join(
        f"<tr><td>{c}</td><td>{d}</td><td><a href=\"javascript:popUpWin('metaData.cfm?RN={c}');\">Metadata</a></td>"
        f"<td><a href=\"WhaleSounds/{c}.wav\" target=\"_blank\">Download</a></td></tr>"
        for c, d in cuts
    )
    return f"<html><body><table><tr><th>Cut</th><th>Date</th><th></th><th></th></tr>{rows}</table></body></html>"


FULL_CUTS = """<html><body><div class="large-4 medium-4 columns left"><select id="getSpecies">
<option value="">Choose a species</option>
<option value="fullCuts.cfm?SP=AA3A&amp;YR=-1">Northern Right Whale</option>
<option value="fullCuts.cfm?SP=BA2A&amp;YR=-1">Sperm Whale</option></select></div></body></html>"""


def _years_page(code, years):
    options = "".join(f'<option value="fullCuts.cfm?SP={code}&amp;YR={y[2:]}">{y}' for y in years)  # no </option>
    return (f'<html><body><div class="large-4 medium-4 columns"><select id="pickYear"><option value="">Year'
            f"{options}</select></div><table class=\"database\"><tr><th>Cut</th></tr></table></body></html>")


def _meta_page(cut, date, sr, other=""):
    return (f"<html><body><table><tr><td>Watkins</td></tr></table><table>"
            f"<tr><td>RN:</td><td>{cut}</td></tr><tr><td>Common Name:</td><td>x</td></tr>"
            f"<tr><td>Scientific Name:</td><td>Eubalaena glacialis</td></tr>"
            f"<tr><td>Date:</td><td>{date}</td></tr><tr><td>Location:</td><td>N41 W071</td></tr>"
            f"<tr><td>Sample Rate:</td><td>{sr}</td></tr><tr><td>Also Present:</td><td>{other}</td></tr>"
            f"</table></body></html>")


def _wav(sr, seconds):
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(int(sr * seconds)) / 5) * 0.3, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Site:
    def __init__(self):
        self.files = {"/index.cfm": INDEX.encode(),
                      "/bestOf.cfm?code=AA3A": _species_page([("5601601O", "3-Apr-1956"), ("56017007", "3-Apr-1956")]).encode(),
                      "/bestOf.cfm?code=BA2A": _species_page([("72009001", "6-Aug-1972")]).encode(),
                      "/metaData.cfm?RN=5601601O": _meta_page("5601601O", "3-Apr-1956", 8000, "Ship noise").encode(),
                      "/metaData.cfm?RN=56017007": _meta_page("56017007", "3-Apr-1956", 10200).encode(),
                      "/metaData.cfm?RN=72009001": _meta_page("72009001", "6-Aug-1972", 40960).encode(),
                      "/WhaleSounds/5601601O.wav": _wav(8000, 1.5),
                      "/WhaleSounds/56017007.wav": _wav(10200, 2.0),
                      "/WhaleSounds/72009001.wav": _wav(40960, 1.0)}
        self.files.update({
            "/fullCuts.cfm": FULL_CUTS.encode(),
            "/fullCuts.cfm?SP=AA3A&YR=-1": _years_page("AA3A", ["1956", "1981"]).encode(),
            "/fullCuts.cfm?SP=AA3A&YR=56": _species_page([("5601601O", "3-Apr-1956"), ("56017007", "3-Apr-1956"),
                                                          ("5601601P", "3-Apr-1956")]).encode(),
            "/fullCuts.cfm?SP=AA3A&YR=81": _species_page([("81014003", "20-Aug-1981"), ("56017007", "3-Apr-1956")]).encode(),
            # a species page without a year menu: its own table is the list
            "/fullCuts.cfm?SP=BA2A&YR=-1": _species_page([("72009001", "6-Aug-1972")]).encode(),
            "/metaData.cfm?RN=5601601P": _meta_page("5601601P", "3-Apr-1956", 8000).encode(),
            "/metaData.cfm?RN=81014003": _meta_page("81014003", "20-Aug-1981", 2000).encode(),
            "/WhaleSounds/5601601P.wav": _wav(8000, 1.2),
            "/WhaleSounds/81014003.wav": _wav(2000, 3.0)})
        self.requests: list[tuple[str, str | None]] = []
        self.cut_short: set[str] = set()  # paths whose first response is cut off


class Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, *a, site=None, **k):
        self.site = site
        super().__init__(*a, **k)

    def log_message(self, *a):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        self.site.requests.append((self.path, rng))
        body = self.site.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        part = body[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if self.path in self.site.cut_short:
            self.site.cut_short.discard(self.path)
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(part)


@pytest.fixture
def site():
    s = Site()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, site=s))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    s.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield s
    server.shutdown()


def test_pages_parsed(site):
    assert list_species(site.url) == [("Northern Right Whale", "AA3A"), ("Sperm Whale", "BA2A")]
    cuts = list_cuts(site.url, "AA3A")
    assert [c[0] for c in cuts] == ["5601601O", "56017007"]
    assert cuts[0][1].endswith("/WhaleSounds/5601601O.wav") and cuts[0][2].endswith("metaData.cfm?RN=5601601O")


def test_download_resume_and_verify(site, tmp_path):
    site.cut_short.add("/WhaleSounds/56017007.wav")
    errors = []
    got = download(tmp_path, base_url=site.url, species=["Northern Right Whale"], on_error=errors.append)
    assert got["failed"] == 1 and "rerun to resume" in errors[0]
    assert (tmp_path / "Northern_Right_Whale" / "56017007.wav.part").is_file()
    site.requests.clear()
    got = download(tmp_path, base_url=site.url, species=["Northern Right Whale"])
    assert got == {"downloaded": 1, "skipped": 1, "failed": 0}
    ranged = [r for p, r in site.requests if p.endswith("56017007.wav")]
    assert ranged and ranged[0] and ranged[0].startswith("bytes=")  # resumed, not restarted
    recs = load_watkins(tmp_path)
    assert sorted(r.cut_id for r in recs) == ["5601601O", "56017007"]
    assert {r.group for r in recs} == {recs[0].group}  # same date: one encounter
    first = next(r for r in recs if r.cut_id == "5601601O")
    assert first.scientific_name == "Eubalaena glacialis" and first.also_present == "Ship noise"
    assert first.sample_rate == 8000 and first.duration_s == pytest.approx(1.5)
    assert (tmp_path / "CREDIT.txt").read_text().startswith("Recordings from the Watkins")


def test_all_cuts_pages_parsed(site):
    assert list_species(site.url, all_cuts=True) == [("Northern Right Whale", "AA3A"), ("Sperm Whale", "BA2A")]
    cuts = list_cuts(site.url, "AA3A", all_cuts=True)
    assert [c[0] for c in cuts] == ["5601601O", "56017007", "5601601P", "81014003"]  # every year, each cut once
    assert cuts[3][1].endswith("/WhaleSounds/81014003.wav") and cuts[3][2].endswith("metaData.cfm?RN=81014003")
    assert [c[0] for c in list_cuts(site.url, "BA2A", all_cuts=True)] == ["72009001"]


def test_download_all_cuts_and_resume_the_metadata(site, tmp_path):
    got = download(tmp_path, base_url=site.url, species=["Northern Right Whale"], all_cuts=True)
    assert got == {"downloaded": 4, "skipped": 0, "failed": 0}
    recs = load_watkins(tmp_path)
    assert sorted(r.cut_id for r in recs) == sorted(["5601601O", "56017007", "5601601P", "81014003"])
    assert len({r.group for r in recs}) == 2  # 1956 and 1981: two encounters for the split
    cache = tmp_path / ".metadata_cache.jsonl"
    assert len(cache.read_text().splitlines()) == 4
    with open(cache, "a") as f:
        f.write('["8101400')  # a run killed while writing a line
    site.requests.clear()
    got = download(tmp_path, base_url=site.url, species=["Northern Right Whale"], all_cuts=True)
    assert got == {"downloaded": 0, "skipped": 4, "failed": 0}
    assert not [p for p, _ in site.requests if "metaData" in p]  # the metadata came from the cache
    (tmp_path / "Northern_Right_Whale" / "81014003.wav").unlink()
    (tmp_path / ".metadata_cache.jsonl").write_text(cache.read_text().replace('"81014003"', '"x"'))
    got = download(tmp_path, base_url=site.url, species=["Northern Right Whale"], all_cuts=True)
    assert got == {"downloaded": 1, "skipped": 3, "failed": 0}
    assert len(load_watkins(tmp_path)) == 4
    # the single JSON file of earlier versions is read too
    legacy = {json.loads(line)[0]: json.loads(line)[1] for line in cache.read_text().splitlines() if line.startswith("[")
              and line.endswith("]")}
    cache.unlink()
    (tmp_path / ".metadata_cache.json").write_text(json.dumps(legacy))
    site.requests.clear()
    assert download(tmp_path, base_url=site.url, species=["Northern Right Whale"], all_cuts=True)["skipped"] == 4
    assert not [p for p, _ in site.requests if "metaData" in p]


def test_download_rejects_a_file_that_is_not_audio(site, tmp_path):
    site.files["/WhaleSounds/72009001.wav"] = b"<html>error page</html>"
    errors = []
    got = download(tmp_path, base_url=site.url, species=["Sperm Whale"], on_error=errors.append)
    assert got["failed"] == 1 and "not readable audio" in errors[0]
    assert not (tmp_path / "Sperm_Whale" / "72009001.wav").exists()


def test_unknown_species_and_unreachable(site, tmp_path):
    with pytest.raises(DownloadError, match="Blue Whale"):
        download(tmp_path, base_url=site.url, species=["Blue Whale"])
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(tmp_path, base_url=site.url + "nothing/")


def test_cli_data_watkins(site, tmp_path):
    from typer.testing import CliRunner

    from deepdive.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "watkins", "--out", str(tmp_path), "--base-url", site.url, "--species", "Sperm Whale"])
    assert res.exit_code == 0, res.stdout
    assert "1 downloaded, 0 already there, 0 failed" in res.stdout
    res = runner.invoke(app, ["data", "watkins", "--out", str(tmp_path), "--base-url", site.url, "--species", "Sperm Whale"])
    assert "0 downloaded, 1 already there" in res.stdout
    res = runner.invoke(app, ["data", "watkins", "--out", str(tmp_path / "all"), "--base-url", site.url, "--all-cuts",
                              "--species", "Northern Right Whale"])
    assert res.exit_code == 0, res.stdout
    assert "4 downloaded, 0 already there, 0 failed" in res.stdout
    res = runner.invoke(app, ["data", "watkins", "--out", str(tmp_path), "--base-url", site.url + "gone/"])
    assert res.exit_code == 1 and res.stderr.startswith("error: ") and "HTTP 404" in res.stderr
