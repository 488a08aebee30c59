"""Writers for results: a terminal table, JSON and CSV for rankings and detections; the Kaggle
submission; Raven selection tables (writer and reader) and the event tables of a scan."""

from __future__ import annotations

import csv
import io
import json


def rankings_json(results: list[dict]) -> str:
    """One object per file, in the order given: {file, ranking, known, novelty} or {file, error}."""
    return json.dumps(results, indent=2, ensure_ascii=False)


def rankings_csv(results: list[dict]) -> str:
    """Long format: file, rank, species, scientific_name, probability, known, novelty, error (known and
    novelty are the recording's, on each of its rows; empty for a model without a novelty fit)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "rank", "species", "scientific_name", "probability", "known", "novelty", "error"])
    for r in results:
        if "error" in r:
            w.writerow([r["file"], "", "", "", "", "", "", r["error"]])
            continue
        known = "" if r.get("known") is None else str(bool(r["known"])).lower()
        novelty = "" if r.get("novelty") is None else f"{r['novelty']:.6f}"
        for k, item in enumerate(r["ranking"], start=1):
            w.writerow([r["file"], k, item["species"], item["scientific_name"], f"{item['probability']:.6f}", known,
                        novelty, ""])
        if not r["ranking"]:
            w.writerow([r["file"], "", "", "", "", known, novelty, ""])
    return buf.getvalue()


def rankings_table(results: list[dict], console, min_confidence: float | None = None) -> None:
    """Print one rich table per file (a line for a file with no species at or above `min_confidence`)."""
    from rich.markup import escape
    from rich.table import Table

    for r in results:
        if "error" in r:
            continue
        if r.get("known") is False:
            console.print(f"{escape(r['file'])}: [bold]none of the species it knows[/bold] (novelty {r['novelty']:.2f}); "
                          "the ranking below is what it sounds most like", soft_wrap=True)
        if not r["ranking"]:
            console.print(f"{escape(r['file'])}: no species at or above {min_confidence:.0%}", soft_wrap=True)
            continue
        t = Table(title=r["file"], title_justify="left", show_edge=False)
        t.add_column("#", justify="right")
        t.add_column("species")
        t.add_column("scientific name", style="italic")
        t.add_column("probability", justify="right")
        t.add_column("")
        for k, item in enumerate(r["ranking"], start=1):
            p = item["probability"]
            t.add_row(str(k), item["species"], item["scientific_name"], f"{p:6.1%}", "█" * int(round(p * 30)))
        console.print(t)


# ---------------------------------------------------------------- detections


def detections_json(results: list[dict]) -> str:
    """One object per file, in the order given: {file, probability, detected} or {file, error}."""
    return json.dumps(results, indent=2, ensure_ascii=False)


def detections_csv(results: list[dict]) -> str:
    """file, probability, detected, error."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "probability", "detected", "error"])
    for r in results:
        if "error" in r:
            w.writerow([r["file"], "", "", r["error"]])
        else:
            w.writerow([r["file"], f"{r['probability']:.6f}", int(r["detected"]), ""])
    return buf.getvalue()


def detections_table(results: list[dict], console, threshold: float) -> None:
    from rich.table import Table

    t = Table(title=f"right-whale calls (threshold {threshold:.2f})", title_justify="left", show_edge=False)
    t.add_column("file")
    t.add_column("probability", justify="right")
    t.add_column("call")
    for r in results:
        if "error" in r:
            continue
        t.add_row(r["file"], f"{r['probability']:6.1%}", "yes" if r["detected"] else "")
    console.print(t)


def submission_csv(rows: list[tuple[str, float]]) -> str:
    """The challenge's submission file: header `clip,probability`, one row per test clip."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["clip", "probability"])
    for clip, p in rows:
        w.writerow([clip, f"{p:.6f}"])
    return buf.getvalue()


# ---------------------------------------------------------------- Raven selection tables

RAVEN_COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Species", "Scientific Name", "Confidence", "Begin Path", "Begin File", "File Offset (s)"]
_RAVEN_NUMBERS = {"Selection": int, "Channel": int, "Begin Time (s)": float, "End Time (s)": float,
                  "Low Freq (Hz)": float, "High Freq (Hz)": float, "Confidence": float, "File Offset (s)": float}


def raven_table(files: list[tuple], low_hz: float, high_hz: float) -> str:
    """A Raven selection table (tab-separated) of the events of one or more files.

    `files`: (path, duration in s, events[, sample rate]) in order. Begin Time runs across the files
    as Raven plays them one after the other; File Offset is the time within each file. Every
    selection lies within its file (an event is clamped to 0..duration) and its band within the
    file's Nyquist frequency, where the sample rate is given. `Begin Path` is written as given (give
    absolute paths: Raven resolves a relative one from the table's folder), `Begin File` is its name."""
    import os

    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    timed = any("start_utc" in e for _, _, events, *_ in files for e in events)
    w.writerow(RAVEN_COLUMNS + (RAVEN_UTC_COLUMNS if timed else []))
    selection, offset = 0, 0.0
    for path, duration, events, *rate in files:
        sr = rate[0] if rate and rate[0] else None
        high = min(high_hz, sr / 2) if sr else high_hz
        low = min(low_hz, high)
        for e in events:
            selection += 1
            start, end = max(0.0, e["start_s"]), min(duration, e["end_s"]) if duration else e["end_s"]
            w.writerow([selection, "Spectrogram 1", 1, f"{offset + start:.4f}", f"{offset + end:.4f}",
                        f"{low:.1f}", f"{high:.1f}", e["label"], e.get("scientific_name", ""), f"{e['peak']:.4f}",
                        path, os.path.basename(path), f"{start:.4f}"]
                       + ([_raven_time(e.get("start_utc")), _raven_time(e.get("end_utc"))] if timed else []))
        offset += duration
    return buf.getvalue()


RAVEN_UTC_COLUMNS = ["Begin Date Time (UTC)", "End Date Time (UTC)"]


def _raven_time(iso: str | None) -> str:
    """2019-06-02T12:34:56.789Z as 2019-06-02 12:34:56.789 (empty for a file whose name has no time)."""
    return iso.replace("T", " ").removesuffix("Z") if iso else ""


def audacity_labels(events: list[dict]) -> str:
    """Audacity's label track format (File > Import > Labels): start, end, label, tab-separated; the
    label carries the peak score."""
    return "".join(f"{e['start_s']:.6f}\t{e['end_s']:.6f}\t{e['label']} {e['peak']:.2f}\n" for e in events)


def summary_csv(results, labels: list[str], starts: dict[str, str] | None = None) -> str:
    """One row per file: file, duration_s, events, events per label (one column each), the label and
    confidence of its most confident event, and its error if it failed; with `starts` (file ->
    ISO time), a `start_utc` column after `file`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", *(["start_utc"] if starts is not None else []), "duration_s", "events",
                *[f"events: {lab}" for lab in labels], "top_label", "top_confidence", "error"])
    for r in results:
        counts = {lab: 0 for lab in labels}
        for e in r.events:
            counts[e["label"]] = counts.get(e["label"], 0) + 1
        top = max(r.events, key=lambda e: e["peak"], default=None)
        w.writerow([r.path, *([starts.get(r.path, "")] if starts is not None else []), f"{r.duration_s:.3f}", len(r.events), *[counts[lab] for lab in labels],
                    top["label"] if top else "", f"{top['peak']:.4f}" if top else "", r.error])
    return buf.getvalue()


def parse_raven_table(text: str) -> list[dict]:
    """Rows of a Raven selection table (ours, or one Raven wrote with its own extra columns), with
    numbers parsed; other columns are kept as text."""
    rows = []
    for r in csv.DictReader(io.StringIO(text), delimiter="\t"):
        row = {}
        for k, v in r.items():
            if k is None:
                continue
            conv = _RAVEN_NUMBERS.get(k)
            row[k] = conv(v) if conv and v not in ("", None) else v
        rows.append(row)
    return rows


def read_raven_table(path) -> list[dict]:
    from pathlib import Path

    return parse_raven_table(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- scan results

EVENT_FIELDS = ["file", "start_s", "end_s", "label", "scientific_name", "peak", "mean", "windows"]


def events_csv(results, timed: bool = False) -> str:
    """One row per event of every file: file, start_s, end_s, label, scientific_name, peak, mean,
    windows; `timed`: then start_utc and end_utc (empty for a file whose name has no time)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EVENT_FIELDS + (["start_utc", "end_utc"] if timed else []))
    for r in results:
        for e in r.events:
            w.writerow([r.path, f"{e['start_s']:.3f}", f"{e['end_s']:.3f}", e["label"], e["scientific_name"],
                        f"{e['peak']:.6f}", f"{e['mean']:.6f}", e["windows"]]
                       + ([e.get("start_utc", ""), e.get("end_utc", "")] if timed else []))
    return buf.getvalue()


def events_json(results, schema: str, model: str) -> str:
    files = [{"file": r.path, "duration_s": round(r.duration_s, 3), "events": r.events} for r in results if not r.error]
    return json.dumps({"schema": schema, "model": model, "files": files}, indent=2, ensure_ascii=False)


def errors_csv(results) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "error"])
    for r in results:
        if r.error:
            w.writerow([r.path, r.error])
    return buf.getvalue()


def _parquet_bytes(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def utf8(path: str) -> str:
    """A path as valid UTF-8 text for formats that require it (Parquet): the bytes of a name that is
    not UTF-8 become U+FFFD (text formats keep the name's own bytes instead)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def windows_parquet(parts, bundle) -> bytes:
    """One row per window of every file: file, start_s, end_s, then the score(s): `probability` for a
    detector; `label`, `probability` (the top species') and one column per species for a species model,
    and, for one with a novelty fit, `novelty` and `known`."""
    import numpy as np
    import pyarrow as pa

    window = bundle.features.window_s
    files, starts, scores, novelty = [], [], [], []
    for path, part in parts:
        files += [utf8(path)] * len(part["starts"])
        starts.append(part["starts"])
        scores.append(part["scores"])
        novelty.append(part["novelty"] if "novelty" in part else np.full(len(part["starts"]), np.nan, np.float32))
    start = np.concatenate(starts) if starts else np.zeros(0)
    cols = {"file": pa.array(files, pa.string()), "start_s": pa.array(start, pa.float64()),
            "end_s": pa.array(start + window, pa.float64())}
    if bundle.task == "detection":
        cols["probability"] = pa.array(np.concatenate(scores) if scores else np.zeros(0), pa.float32())
    else:
        p = np.concatenate(scores) if scores else np.zeros((0, len(bundle.labels)), np.float32)
        cols["label"] = pa.array([bundle.labels[i] for i in p.argmax(1)], pa.string())
        cols["probability"] = pa.array(p.max(1) if len(p) else np.zeros(0), pa.float32())
        for i, lab in enumerate(bundle.labels):
            cols[lab] = pa.array(p[:, i], pa.float32())
        if bundle.novelty_judge is not None:
            nov = np.concatenate(novelty) if novelty else np.zeros(0, np.float32)
            cols["novelty"] = pa.array(nov, pa.float32(), from_pandas=True)
            cols["known"] = pa.array(nov <= bundle.novelty_judge.novelty.threshold, pa.bool_())
    return _parquet_bytes(pa.table(cols))


def events_parquet(results, timed: bool = False) -> bytes:
    """The events table; `timed`: with start_utc and end_utc columns (UTC timestamps, null for a file
    whose name has no time)."""
    from datetime import datetime

    import pyarrow as pa

    fields = [("file", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()), ("label", pa.string()),
              ("scientific_name", pa.string()), ("peak", pa.float64()), ("mean", pa.float64()), ("windows", pa.int64())]
    if timed:
        fields += [("start_utc", pa.timestamp("ms", tz="UTC")), ("end_utc", pa.timestamp("ms", tz="UTC"))]
    names = [name for name, _ in fields]
    rows = []
    for r in results:
        for e in r.events:
            row = {"file": utf8(r.path), **{k: v for k, v in e.items() if k in names}}
            for k in ("start_utc", "end_utc"):
                if k in row:
                    row[k] = datetime.fromisoformat(row[k])
            rows.append(row)
    return _parquet_bytes(pa.Table.from_pylist(rows, schema=pa.schema(fields)))
