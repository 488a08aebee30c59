"""Writers for results: a terminal table, JSON and CSV for rankings and detections; the Kaggle submission."""

from __future__ import annotations

import csv
import io
import json


def rankings_json(results: list[dict]) -> str:
    """One object per file, in the order given: {file, ranking} or {file, error}."""
    return json.dumps(results, indent=2, ensure_ascii=False)


def rankings_csv(results: list[dict]) -> str:
    """Long format: file, rank, species, scientific_name, probability, error."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "rank", "species", "scientific_name", "probability", "error"])
    for r in results:
        if "error" in r:
            w.writerow([r["file"], "", "", "", "", r["error"]])
            continue
        for k, item in enumerate(r["ranking"], start=1):
            w.writerow([r["file"], k, item["species"], item["scientific_name"], f"{item['probability']:.6f}", ""])
    return buf.getvalue()


def rankings_table(results: list[dict], console) -> None:
    """Print one rich table per file."""
    from rich.table import Table

    for r in results:
        if "error" in r:
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
