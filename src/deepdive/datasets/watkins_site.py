"""Download the Watkins "Best of" cuts, or all its cuts, and their metadata from the Watkins site.

The site (https://cis.whoi.edu/science/B/whalesounds/) serves:
- an index page (`index.cfm`) linking each species' best-of page as `bestOf.cfm?code=XXXX`;
- a species page, a table with one row per cut: a "Download" link to the cut's .wav and a
  "Metadata" link `javascript:popUpWin('metaData.cfm?RN=<cut id>')`;
- a metadata page per cut whose tables hold `Field:` / value rows (date, location, sample rate, other
  sources heard...);
- for all cuts (`all_cuts=True`, about ten times as many, from many more encounters): `fullCuts.cfm`,
  whose species menu has options `fullCuts.cfm?SP=XXXX&YR=-1`; that page's year menu has options
  `fullCuts.cfm?SP=XXXX&YR=NN`, and each year's page is a table of cuts like a best-of page.

What it writes is the layout `load_watkins` reads: `<Species_Name>/<cut_id>.wav` and a
`metadata.csv`. Downloads resume: a finished file is skipped; a partial one (`.part`) continues with
an HTTP Range request. A file is verified before it is renamed into place: its size equals the
server's Content-Length and libsndfile opens it as audio with the sample rate the metadata gives.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from ..errors import DownloadError
from ..store import atomic_write_text
from .watkins import CREDIT

USER_AGENT = "deepdive/0.1 (marine bioacoustics research toolkit)"
CACHE = ".metadata_cache.jsonl"  # one line [cut id, metadata] per cut, appended as fetched
FIELDS = ["path", "cut_id", "species", "scientific_name", "watkins_code", "sample_rate", "duration_s",
          "tape", "date", "location", "also_present"]


class _Links(HTMLParser):
    """Collects anchors (href, text) and table rows (cell texts, hrefs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str, str]] = []
        self.rows: list[tuple[list[str], list[str]]] = []
        self.options: list[tuple[str, str]] = []  # (value, text) of every <option>
        self._option: tuple[str, list[str]] | None = None
        self._href: str | None = None
        self._text: list[str] = []
        self._row: tuple[list[str], list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self._href, self._text = a.get("href") or "", []
            if self._row is not None:
                self._row[1].append(self._href)
        elif tag == "tr":
            self._row = ([], [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "option":
            self._end_option()  # </option> is optional in HTML
            self._option = (a.get("value") or "", [])

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, " ".join("".join(self._text).split())))
            self._href = None
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row[0].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag in ("option", "select"):
            self._end_option()

    def _end_option(self) -> None:
        if self._option is not None:
            self.options.append((self._option[0], " ".join("".join(self._option[1]).split())))
            self._option = None

    def handle_data(self, data):
        if self._option is not None:
            self._option[1].append(data)
        if self._href is not None:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _get(url: str, timeout: float = 30.0, retries: int = 3, headers: dict | None = None):
    last: Exception | None = None
    for attempt in range(retries):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise DownloadError(f"{url}: HTTP {exc.code}; check the address (--base-url)") from None
            last = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = exc
        time.sleep(min(4.0, 0.5 * 2**attempt))
    raise DownloadError(f"{url}: unreachable after {retries} tries ({last}); check the network and rerun to resume")


def _page(url: str) -> _Links:
    with _get(url) as resp:
        html = resp.read().decode(resp.headers.get_content_charset() or "utf-8", errors="replace")
    p = _Links()
    p.feed(html)
    return p


def list_species(base_url: str, all_cuts: bool = False) -> list[tuple[str, str]]:
    """(species name, code) from the index page's best-of links, or with `all_cuts` from the species
    menu of the all-cuts page."""
    page = "fullCuts.cfm" if all_cuts else "index.cfm"
    pattern = r"fullCuts\.cfm\?SP=([A-Za-z0-9]+)" if all_cuts else r"bestOf\.cfm\?code=([A-Za-z0-9]+)"
    links = _page(urljoin(base_url, page))
    seen: dict[str, str] = {}
    for href, text in links.options + links.anchors:
        m = re.search(pattern, href)
        if m and text and m.group(1) not in seen.values():
            seen[text] = m.group(1)
    if not seen:
        raise DownloadError(f"{base_url}{page}: no species links found; the site's layout may have changed")
    return sorted(seen.items())


def list_cuts(base_url: str, code: str, all_cuts: bool = False) -> list[tuple[str, str, str]]:
    """(cut id, audio URL, metadata URL) for each cut on a species' best-of page, or with `all_cuts` on
    each of the year pages of its all-cuts page (in the menu's order, each cut once)."""
    if not all_cuts:
        return _cuts_on(urljoin(base_url, f"bestOf.cfm?code={code}"))
    first = urljoin(base_url, f"fullCuts.cfm?SP={code}&YR=-1")
    links = _page(first)
    years = []
    for value, _ in links.options + links.anchors:
        m = re.search(rf"fullCuts\.cfm\?SP={re.escape(code)}&YR=(\d+)\b", value)
        if m and m.group(1) not in years:
            years.append(m.group(1))
    pages = [urljoin(base_url, f"fullCuts.cfm?SP={code}&YR={y}") for y in years]
    cuts: dict[str, tuple[str, str, str]] = {}
    for cut in _cuts_on(first, links) if not pages else [c for url in pages for c in _cuts_on(url)]:
        cuts.setdefault(cut[0], cut)
    return list(cuts.values())


def _cuts_on(page_url: str, links: _Links | None = None) -> list[tuple[str, str, str]]:
    """(cut id, audio URL, metadata URL) for each row of a page's tables that links a .wav."""
    cuts = []
    for _, hrefs in (links or _page(page_url)).rows:
        wav = next((h for h in hrefs if re.search(r"\.wav($|\?)", h, re.I)), None)
        meta = next((re.search(r"popUpWin\('([^']+)'\)", h) for h in hrefs if "popUpWin" in h), None)
        if not wav:
            continue
        cut_id = Path(wav.split("?")[0]).stem
        meta_url = urljoin(page_url, meta.group(1)) if meta else urljoin(page_url, f"metaData.cfm?RN={cut_id}")
        cuts.append((cut_id, urljoin(page_url, wav), meta_url))
    return cuts


def parse_metadata(url: str) -> dict[str, str]:
    """Field/value rows of a cut's metadata page, keys lower-cased without the colon."""
    out: dict[str, str] = {}
    for cells, _ in _page(url).rows:
        if len(cells) == 2 and cells[0]:
            out[cells[0].rstrip(":").strip().lower()] = cells[1]
    return out


def _pick(meta: dict[str, str], *needles: str) -> str:
    for k, v in meta.items():
        if any(n in k for n in needles):
            return v
    return ""


def _download_file(url: str, dest: Path, progress, done_before: int) -> int:
    """Download to dest (resuming dest.part); returns bytes fetched now."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with _get(url, headers=headers) as resp:
        status = getattr(resp, "status", 200)
        if have and status != 206:  # server ignored the range: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        fetched = 0
        with open(part, "ab" if have else "wb") as f:
            while chunk := resp.read(1 << 16):
                f.write(chunk)
                fetched += len(chunk)
                if progress:
                    progress(done_before + fetched, None, dest.name)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: got {size} of {total} bytes; rerun to resume")
    return fetched


def _verify(path: Path, sample_rate: str) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:
        raise DownloadError(f"{path}: the download is not readable audio; delete it and rerun") from None
    if sample_rate and abs(int(float(sample_rate)) - info.samplerate) > 1:
        raise DownloadError(f"{path}: sample rate {info.samplerate} Hz differs from the metadata's {sample_rate} Hz")
    return info.frames / info.samplerate


def _read_cache(out: Path) -> tuple[dict[str, dict], bool]:
    """Metadata already fetched: one JSON line per cut (a line cut short by a kill is ignored), also
    the single JSON file that earlier versions wrote; and whether the lines end mid-line."""
    cache: dict[str, dict] = {}
    legacy = out / ".metadata_cache.json"
    if legacy.is_file():
        cache.update(json.loads(legacy.read_text()))
    text = (out / CACHE).read_text() if (out / CACHE).is_file() else ""
    for line in text.splitlines():
        try:
            cut_id, meta = json.loads(line)
        except (ValueError, TypeError):  # torn by a kill
            continue
        cache[cut_id] = meta
    return cache, bool(text) and not text.endswith("\n")


def download(
    out: str | Path,
    base_url: str = "https://cis.whoi.edu/science/B/whalesounds/",
    species: list[str] | None = None,
    progress=None,
    on_error=None,
    all_cuts: bool = False,
) -> dict:
    """Download best-of cuts, or with `all_cuts` every cut (all species, or those named), into `out`;
    resumable. Returns counts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not base_url.endswith("/"):
        base_url += "/"
    wanted = {s.lower() for s in species} if species else None
    catalogue = [(name, code) for name, code in list_species(base_url, all_cuts) if wanted is None or name.lower() in wanted]
    if wanted and not catalogue:
        raise DownloadError(f"{base_url}: none of {', '.join(species or [])} is on the site's species list")
    cache, torn = _read_cache(out)
    rows: list[dict] = []
    counts = {"downloaded": 0, "skipped": 0, "failed": 0}
    fetched_bytes = 0
    with open(out / CACHE, "a") as cache_file:  # appended, not rewritten: all cuts are thousands of pages
        if torn:  # a run killed mid-line: start the next line on its own
            cache_file.write("\n")
        for name, code in catalogue:
            folder = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
            (out / folder).mkdir(exist_ok=True)
            for cut_id, wav_url, meta_url in list_cuts(base_url, code, all_cuts):
                dest = out / folder / f"{cut_id}.wav"
                try:
                    if cut_id not in cache:
                        cache[cut_id] = parse_metadata(meta_url)
                        cache_file.write(json.dumps([cut_id, cache[cut_id]]) + "\n")
                        cache_file.flush()
                    meta = cache[cut_id]
                    sr = _pick(meta, "sample rate", "sampling")
                    if dest.is_file():
                        duration = _verify(dest, sr)
                        counts["skipped"] += 1
                    else:
                        fetched_bytes += _download_file(wav_url, dest, progress, fetched_bytes)
                        part = dest.with_name(dest.name + ".part")
                        try:
                            duration = _verify(part, sr)
                        except DownloadError:
                            part.unlink(missing_ok=True)
                            raise
                        part.replace(dest)
                        counts["downloaded"] += 1
                except DownloadError as exc:
                    counts["failed"] += 1
                    if on_error:
                        on_error(str(exc))
                    continue
                rows.append({
                    "path": f"{folder}/{cut_id}.wav", "cut_id": cut_id, "species": name,
                    "scientific_name": _pick(meta, "scientific", "genus", "latin"),
                    "watkins_code": code, "sample_rate": sr or "", "duration_s": round(duration, 4),
                    "tape": cut_id[:5], "date": _pick(meta, "date"), "location": _pick(meta, "location", "geographic"),
                    "also_present": _pick(meta, "also", "other"),
                })
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "metadata.csv", buf.getvalue())
    atomic_write_text(out / "CREDIT.txt", f"Recordings from the {CREDIT}.\nFree for personal and academic, "
                      "non-commercial use; credit the database in any use.\n")
    return counts
